"""Scanner description: selection field, drive field, receiver. Frozen dataclasses, TOML, presets.

Units: gradients in T/m/µ0, drive amplitudes in T/µ0, frequencies in Hz, phases in rad, coil
sensitivities in T/A (field per unit current of the receive coil, µ0·p), noise density in V/√Hz,
voltages in V. The drive field of channel l is ``A_l sin(2π f_l t + φ_l) e_axis``.
"""

from dataclasses import dataclass, field, fields, replace
import functools
import math
from pathlib import Path

import numpy as np

from . import tomlio
from .errors import MPISimError, check_finite, check_int, check_positive
from .io.atomic import atomic_path

__all__ = ["AXES", "SelectionField", "DriveChannel", "DriveField", "ReceiveChannel", "Receiver", "Scanner",
           "MAX_SAMPLES", "validate_scanner_dict", "read_scanner_toml", "PRESETS", "get_scanner"]

AXES = ("x", "y", "z")


def _tuple2(m):
    return tuple(tuple(float(x) for x in row) for row in m)


@dataclass(frozen=True)
class SelectionField:
    """Linear selection field H_S(r) = G r.

    gradient : (3, 3) nested tuple, T/m/µ0. Symmetric with trace 0 (Maxwell's equations).
    """

    gradient: tuple = ((-1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, 2.0))

    def __post_init__(self):
        try:
            g = np.array(self.gradient, dtype=float)
        except (TypeError, ValueError):
            raise MPISimError(f"selection_field.gradient must be a 3x3 matrix of numbers, got {self.gradient!r}") from None
        if g.shape != (3, 3):
            raise MPISimError(f"selection_field.gradient must be 3x3, got shape {g.shape}")
        check_finite("selection_field.gradient", g)
        scale = np.abs(g).max()
        if scale == 0:
            raise MPISimError("selection_field.gradient is zero: there is no field-free point")
        if abs(np.trace(g)) > 1e-9 * scale:
            raise MPISimError(f"selection_field.gradient must have trace 0 (div B = 0), got trace {np.trace(g):g} T/m/µ0")
        if np.abs(g - g.T).max() > 1e-9 * scale:
            raise MPISimError("selection_field.gradient must be symmetric (curl H = 0)")
        eig = np.abs(np.linalg.eigvalsh(g))
        if eig.min() < 1e-9 * scale:
            raise MPISimError("selection_field.gradient must be invertible for a field-free point")
        if eig.min() < 1e-3:
            raise MPISimError(f"selection_field.gradient is too weak for a scanner: smallest eigenvalue "
                              f"{eig.min():.3g} T/m/µ0 (at least 0.001)")
        object.__setattr__(self, "gradient", _tuple2(g))

    @property
    def matrix(self):
        """The gradient as a (3, 3) float array in T/m/µ0."""
        return np.array(self.gradient)


@dataclass(frozen=True)
class DriveChannel:
    """One sinusoidal drive-field channel along a Cartesian axis.

    axis : "x" | "y" | "z"; amplitude : T/µ0; divider : int, f = base_frequency / divider;
    phase : rad (the drive is A sin(2π f t + phase)).
    """

    axis: str = "x"
    amplitude: float = 0.012
    divider: int = 102
    phase: float = math.pi / 2
    waveform: str = "sine"

    def __post_init__(self):
        if self.axis not in AXES:
            raise MPISimError(f"drive channel axis must be one of x, y, z, got {self.axis!r}")
        check_positive(f"drive channel {self.axis} amplitude (T/µ0)", self.amplitude)
        if self.amplitude > 1.0:
            raise MPISimError(f"drive channel {self.axis} amplitude must be in T/µ0 (e.g. 0.012), got {self.amplitude}")
        object.__setattr__(self, "divider", check_int(f"drive channel {self.axis} divider", self.divider, 1))
        if isinstance(self.phase, bool) or not isinstance(self.phase, (int, float, np.number)):
            raise MPISimError(f"drive channel {self.axis} phase must be a number in rad, got {self.phase!r}")
        check_finite(f"drive channel {self.axis} phase", float(self.phase))
        if self.waveform != "sine":
            raise MPISimError(f"drive channel {self.axis}: only waveform 'sine' is supported, got {self.waveform!r}")


@dataclass(frozen=True)
class DriveField:
    """Drive field: a base frequency (Hz) and one channel per driven axis."""

    base_frequency: float = 2.5e6
    channels: tuple = (DriveChannel(),)

    def __post_init__(self):
        check_positive("drive_field.base_frequency (Hz)", self.base_frequency)
        chans = tuple(c if isinstance(c, DriveChannel) else DriveChannel(**c) for c in self.channels)
        if not chans:
            raise MPISimError("drive_field needs at least one channel")
        axes = [c.axis for c in chans]
        if len(set(axes)) != len(axes):
            raise MPISimError(f"drive_field channels must drive distinct axes, got {axes}")
        object.__setattr__(self, "channels", chans)

    @property
    def frequencies(self):
        """Drive frequencies f_l in Hz, one per channel."""
        return np.array([self.base_frequency / c.divider for c in self.channels])

    @property
    def cycle(self):
        """Length of one drive-field period (the Lissajous repetition time) in s."""
        return math.lcm(*[c.divider for c in self.channels]) / self.base_frequency


@dataclass(frozen=True)
class ReceiveChannel:
    """A homogeneous receive coil: sensitivity (3,) in T/A (field at the centre per ampere)."""

    sensitivity: tuple = (1e-3, 0.0, 0.0)

    def __post_init__(self):
        try:
            s = np.array(self.sensitivity, dtype=float)
        except (TypeError, ValueError):
            raise MPISimError(f"receive channel sensitivity must be 3 numbers, got {self.sensitivity!r}") from None
        if s.shape != (3,):
            raise MPISimError(f"receive channel sensitivity must have 3 components (T/A), got shape {s.shape}")
        check_finite("receive channel sensitivity", s)
        if not np.any(s):
            raise MPISimError("receive channel sensitivity must not be zero")
        object.__setattr__(self, "sensitivity", tuple(float(x) for x in s))


@dataclass(frozen=True)
class Receiver:
    """Receive chain.

    bandwidth : Hz (sampling rate = 2 · bandwidth). channels : receive coils.
    noise_density : V/√Hz, white Gaussian noise (σ per sample = noise_density·√bandwidth) used
        by ``noise="realistic"``.
    background_level : V, amplitude of the scanner's static background harmonics (the
        frame-independent signal of an empty scanner) used by ``noise="realistic"``.
    bandstop_attenuation, bandstop_width : feed-through band-stop filter around each drive
        frequency (linear amplitude factor, full width in Hz); used when the feed-through filter
        is switched on.
    feedthrough_level : V, direct drive-field pick-up at the drive frequencies before the band-stop.
    transfer_function : path of a transfer-function file ("" = flat), see :mod:`mpisim.transfer`.
    """

    bandwidth: float = 1.25e6
    channels: tuple = (ReceiveChannel((1e-3, 0, 0)), ReceiveChannel((0, 1e-3, 0)), ReceiveChannel((0, 0, 1e-3)))
    noise_density: float = 2e-9
    background_level: float = 2e-6
    bandstop_attenuation: float = 1e-3
    bandstop_width: float = 3e3
    feedthrough_level: float = 1.0
    transfer_function: str = ""

    def __post_init__(self):
        check_positive("receiver.bandwidth (Hz)", self.bandwidth)
        chans = tuple(c if isinstance(c, ReceiveChannel) else ReceiveChannel(**c) for c in self.channels)
        if not chans:
            raise MPISimError("receiver needs at least one channel")
        object.__setattr__(self, "channels", chans)
        check_positive("receiver.noise_density (V/√Hz)", self.noise_density, allow_zero=True)
        check_positive("receiver.background_level (V)", self.background_level, allow_zero=True)
        check_positive("receiver.bandstop_attenuation", self.bandstop_attenuation, allow_zero=True)
        check_positive("receiver.bandstop_width (Hz)", self.bandstop_width, allow_zero=True)
        check_positive("receiver.feedthrough_level (V)", self.feedthrough_level, allow_zero=True)

    @property
    def sampling_rate(self):
        """Sampling rate in Hz (2 · bandwidth)."""
        return 2 * self.bandwidth

    @property
    def sensitivities(self):
        """(C, 3) array of coil sensitivities in T/A."""
        return np.array([c.sensitivity for c in self.channels])

    @property
    def noise_sigma(self):
        """Standard deviation of the white noise per time sample in V."""
        return self.noise_density * math.sqrt(self.bandwidth)


@dataclass(frozen=True)
class Scanner:
    """An FFP scanner: selection field, drive field, receiver, and descriptive names."""

    name: str = "custom"
    manufacturer: str = "mpisim"
    facility: str = ""
    topology: str = "FFP"
    selection_field: SelectionField = field(default_factory=SelectionField)
    drive_field: DriveField = field(default_factory=DriveField)
    receiver: Receiver = field(default_factory=Receiver)

    def __post_init__(self):
        for name, cls in (("selection_field", SelectionField), ("drive_field", DriveField), ("receiver", Receiver)):
            v = getattr(self, name)
            if isinstance(v, dict):
                object.__setattr__(self, name, _from_dict(cls, v, name))
        g = self.gradient
        for c in self.drive_field.channels:
            r = np.abs(np.linalg.solve(g, c.amplitude * np.eye(3)[AXES.index(c.axis)])).max()
            if r > 0.5:
                raise MPISimError(f"drive channel {c.axis} moves the field-free point by ±{r:.3g} m (more than "
                                  f"0.5 m): amplitude {c.amplitude:g} T/µ0 is too large for the gradient")
        v = self.num_samples_exact
        if v > MAX_SAMPLES:
            raise MPISimError(
                f"the drive cycle (lcm of drive_field.channels divider / drive_field.base_frequency = "
                f"{self.drive_field.cycle:.3g} s) sampled at 2 × receiver.bandwidth = {self.receiver.sampling_rate:.3g} Hz "
                f"is {v:.3g} samples; at most {MAX_SAMPLES} are supported")
        if abs(v - round(v)) > 1e-6 * max(v, 1):
            raise MPISimError(
                f"drive cycle {self.drive_field.cycle:g} s times sampling rate {self.receiver.sampling_rate:g} Hz "
                f"is not an integer number of samples ({v:g}); adjust bandwidth or dividers")
        if round(v) < 2:
            raise MPISimError("a drive cycle must hold at least 2 samples; raise the receiver bandwidth")
        if self.topology != "FFP":
            raise MPISimError(f"only topology 'FFP' is supported, got {self.topology!r}")

    # --- derived sequence quantities ------------------------------------------------------------
    @property
    def num_samples_exact(self):
        return self.drive_field.cycle * self.receiver.sampling_rate

    @property
    def num_samples(self):
        """Samples per drive period V."""
        return int(round(self.num_samples_exact))

    @property
    def num_frequencies(self):
        """Frequency bins K = V/2 + 1 of the real FFT of one period."""
        return self.num_samples // 2 + 1

    @property
    def frequencies(self):
        """Frequency axis of the spectra in Hz, ``rfftfreq(V, 1/(2·bandwidth))``."""
        return np.fft.rfftfreq(self.num_samples, 1.0 / self.receiver.sampling_rate)

    @property
    def times(self):
        """Sample times of one period in s."""
        return np.arange(self.num_samples) / self.receiver.sampling_rate

    @property
    def num_rx_channels(self):
        return len(self.receiver.channels)

    @property
    def gradient(self):
        """Selection-field gradient (3, 3) in T/m/µ0."""
        return self.selection_field.matrix

    def drive_field_at(self, t):
        """Drive field H_D(t), shape (3, len(t)), in T/µ0."""
        t = np.asarray(t, dtype=float)
        h = np.zeros((3,) + t.shape)
        for c in self.drive_field.channels:
            f = self.drive_field.base_frequency / c.divider
            h[AXES.index(c.axis)] += c.amplitude * np.sin(2 * np.pi * f * t + c.phase)
        return h

    @functools.cached_property
    def drive_waveform(self):
        """H_D at the sample times of one period, (3, V) in T/µ0 (computed once per scanner)."""
        w = self.drive_field_at(self.times)
        w.flags.writeable = False
        return w

    def ffp(self, t=None):
        """FFP trajectory r(t) = −G⁻¹ H_D(t), shape (3, len(t)), in m (default: one period)."""
        t = self.times if t is None else t
        return -np.linalg.solve(self.gradient, self.drive_field_at(t))

    @property
    def drive_fov(self):
        """Drive-field FOV per axis (3,) in m: 2 A_i / |G_ii| (0 on undriven axes)."""
        fov = np.zeros(3)
        g = self.gradient
        for c in self.drive_field.channels:
            i = AXES.index(c.axis)
            fov[i] = 2 * c.amplitude / abs(g[i, i]) if g[i, i] else 0.0
        return fov

    @property
    def driven_axes(self):
        return tuple(AXES.index(c.axis) for c in self.drive_field.channels)

    def with_(self, **changes):
        return replace(self, **changes)

    # --- serialisation ------------------------------------------------------------------------
    def to_dict(self):
        """Nested plain dict, the TOML layout of a scanner file."""
        sf = {"gradient": [list(r) for r in self.selection_field.gradient]}
        df = {"base_frequency": self.drive_field.base_frequency,
              "channels": [{f.name: getattr(c, f.name) for f in fields(c)} for c in self.drive_field.channels]}
        r = self.receiver
        rx = {f.name: getattr(r, f.name) for f in fields(r) if f.name != "channels"}
        rx["channels"] = [{"sensitivity": list(c.sensitivity)} for c in r.channels]
        return {"name": self.name, "manufacturer": self.manufacturer, "facility": self.facility,
                "topology": self.topology, "selection_field": sf, "drive_field": df, "receiver": rx}

    @classmethod
    def from_dict(cls, d, source="scanner"):
        return _from_dict(cls, d, source)

    def to_toml(self):
        return "# mpisim scanner description (SI units; fields in T/µ0, gradients in T/m/µ0)\n" + tomlio.dumps(self.to_dict())

    @classmethod
    def from_toml(cls, text, source="scanner TOML"):
        return cls.from_dict(tomlio.loads(text, source), source)

    def save(self, path):
        """Write the scanner as TOML (atomically)."""

        with atomic_path(path, overwrite=True) as tmp:
            Path(tmp).write_text(self.to_toml(), encoding="utf-8")

    @classmethod
    def load(cls, path):
        """Read a scanner TOML file (validated key by key, see :func:`read_scanner_toml`)."""
        return read_scanner_toml(path)[0]


def _from_dict(cls, d, source):
    if not isinstance(d, dict):
        raise MPISimError(f"{source}: expected a table, got {type(d).__name__}")
    names = {f.name for f in fields(cls)}
    bad = set(d) - names
    if bad:
        raise MPISimError(f"{source}: unknown field(s) {', '.join(sorted(bad))} for {cls.__name__}; "
                          f"known: {', '.join(sorted(names))}")
    try:
        return cls(**d)
    except TypeError as e:
        raise MPISimError(f"{source}: {e}") from None


# --- the TOML schema ---------------------------------------------------------------------------------

MAX_SAMPLES = 2 ** 22
"""Most samples per drive cycle a scanner may have (4 194 304; the 3D Bruker sequence has 53 856):
above it one period of one voxel's signal alone is tens of MB and a system matrix is out of reach."""

_REQUIRED, _OPTIONAL = True, False
# key: (required, kind[, low, high, unit]); kind: str, table, tables (count range), int, num, vec3, mat3
_SCHEMA = {
    "": {"name": (_OPTIONAL, "str"), "manufacturer": (_OPTIONAL, "str"), "facility": (_OPTIONAL, "str"),
         "topology": (_OPTIONAL, "str"), "selection_field": (_REQUIRED, "table"),
         "drive_field": (_REQUIRED, "table"), "receiver": (_REQUIRED, "table")},
    "selection_field": {"gradient": (_REQUIRED, "mat3", -1e3, 1e3, "T/m/µ0")},
    "drive_field": {"base_frequency": (_REQUIRED, "num", 0.0, 1e9, "Hz"),
                    "channels": (_REQUIRED, "tables", 1, 3, "channel")},
    "drive_field.channels": {"axis": (_REQUIRED, "str"), "amplitude": (_REQUIRED, "num", 0.0, 1.0, "T/µ0"),
                             "divider": (_REQUIRED, "int", 1, 2 ** 31, ""),
                             "phase": (_OPTIONAL, "num", -1e3, 1e3, "rad"), "waveform": (_OPTIONAL, "str")},
    "receiver": {"bandwidth": (_REQUIRED, "num", 0.0, 1e9, "Hz"), "channels": (_REQUIRED, "tables", 1, 16, "coil"),
                 "noise_density": (_OPTIONAL, "num", 0.0, 1.0, "V/√Hz"),
                 "background_level": (_OPTIONAL, "num", 0.0, 1e3, "V"),
                 "bandstop_attenuation": (_OPTIONAL, "num", 0.0, 1.0, ""),
                 "bandstop_width": (_OPTIONAL, "num", 0.0, 1e9, "Hz"),
                 "feedthrough_level": (_OPTIONAL, "num", 0.0, 1e6, "V"),
                 "transfer_function": (_OPTIONAL, "str")},
    "receiver.channels": {"sensitivity": (_REQUIRED, "vec3", -1e3, 1e3, "T/A")},
}


_POSITIVE = ("base_frequency", "bandwidth", "amplitude")
"""Keys whose lower bound (0) is excluded."""


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_value(source, key, v, spec):
    """Type and range of one TOML value; a one-line error naming the key."""
    kind = spec[1]
    where = f"{source}: {key}"
    if kind == "str":
        if not isinstance(v, str):
            raise MPISimError(f"{where} must be a string, got {v!r}")
        return
    if kind == "table":
        if not isinstance(v, dict):
            raise MPISimError(f"{where} must be a table ([{key}]), got {v!r}")
        return
    lo, hi, unit = spec[2], spec[3], spec[4]
    unit = f" {unit}" if unit else ""
    if kind == "tables":
        if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
            raise MPISimError(f"{where} must be an array of tables ([[{key}]]), got {v!r}")
        if not lo <= len(v) <= hi:
            raise MPISimError(f"{where} must hold {lo} to {hi} {unit.strip()}s, got {len(v)}")
        return
    if kind in ("num", "int"):
        if not _is_number(v) or (kind == "int" and not float(v).is_integer()):
            raise MPISimError(f"{where} must be {'an integer' if kind == 'int' else 'a number'}{unit and ' in' + unit}, "
                              f"got {v!r}")
        positive = key.rsplit(".", 1)[-1] in _POSITIVE
        if not math.isfinite(v) or v > hi or v < lo or (positive and v <= lo):
            raise MPISimError(f"{where} = {v!r} is out of range ({'> ' if positive else ''}{lo:g} to {hi:g}{unit})")
        return
    shape = (3,) if kind == "vec3" else (3, 3)
    ok = isinstance(v, list) and len(v) == 3 and all(
        (_is_number(x) if kind == "vec3" else isinstance(x, list) and len(x) == 3 and all(map(_is_number, x)))
        for x in v)
    if not ok:
        raise MPISimError(f"{where} must be {'3 numbers' if kind == 'vec3' else 'a 3x3 matrix of numbers'}{unit and ' in' + unit}, "
                          f"got {v!r}")
    a = np.array(v, float).reshape(shape)
    if not np.all(np.isfinite(a)) or np.abs(a).max() > hi:
        raise MPISimError(f"{where} is out of range (finite, |value| <= {hi:g}{unit})")


def validate_scanner_dict(d, source="scanner TOML"):
    """Check a scanner table (parsed TOML) key by key: required sections and keys, types and
    ranges, each error one line naming the key. Returns the optional keys that were missing and
    so take mpisim's defaults (e.g. ``receiver.noise_density``)."""
    if not isinstance(d, dict):
        raise MPISimError(f"{source}: expected a table, got {type(d).__name__}")
    filled = []

    def walk(table, section, key_prefix):
        schema = _SCHEMA[section]
        unknown = sorted(set(table) - set(schema))
        if unknown:
            raise MPISimError(f"{source}: unknown key(s) {', '.join(key_prefix + k for k in unknown)}; "
                              f"known in {('[' + section + ']') if section else 'the top level'}: {', '.join(schema)}")
        missing = [key_prefix + k for k, spec in schema.items() if spec[0] and k not in table]
        if missing:
            raise MPISimError(f"{source}: missing {'key' if len(missing) == 1 else 'keys'} {', '.join(missing)}")
        for k, spec in schema.items():
            if k not in table:
                filled.append(key_prefix + k)
                continue
            _check_value(source, key_prefix + k, table[k], spec)
            sub = f"{section}.{k}" if section else k
            if spec[1] == "table":
                walk(table[k], sub, f"{sub}.")
            elif spec[1] == "tables":
                for i, item in enumerate(table[k]):
                    walk(item, sub, f"{sub}[{i}].")

    walk(d, "", "")
    return [k for k in filled if k.split(".")[0] in ("drive_field", "receiver")]


def read_scanner_toml(path):
    """(Scanner, defaults filled) from a scanner TOML file: validated key by key
    (:func:`validate_scanner_dict`); a transfer-function path must exist (relative paths are
    taken from the TOML file's folder, then the working directory)."""
    d = tomlio.load(path)
    filled = validate_scanner_dict(d, str(path))
    tf = d.get("receiver", {}).get("transfer_function", "")
    if tf:
        cand = [Path(path).parent / tf, Path(tf)] if not Path(tf).is_absolute() else [Path(tf)]
        found = next((c for c in cand if c.is_file()), None)
        if found is None:
            raise MPISimError(f"{path}: receiver.transfer_function {tf!r} does not exist")
        d["receiver"]["transfer_function"] = str(found)
    try:
        return Scanner.from_dict(d, str(path)), filled
    except MPISimError as e:
        raise MPISimError(e if str(e).startswith(str(path)) else f"{path}: {e}") from None


# --- presets --------------------------------------------------------------------------------------

def _bruker(ndim):
    dividers = (102, 96, 99)
    chans = tuple(DriveChannel(axis=AXES[i], amplitude=0.012, divider=dividers[i], phase=math.pi / 2)
                  for i in range(ndim))
    return Scanner(
        name=f"bruker-{ndim}d",
        manufacturer="Bruker (simulated by mpisim)",
        facility="OpenMPIData preclinical scanner (simulated)",
        selection_field=SelectionField(((-1.0, 0, 0), (0, -1.0, 0), (0, 0, 2.0))),
        drive_field=DriveField(base_frequency=2.5e6, channels=chans),
        receiver=Receiver(bandwidth=1.25e6),
    )


PRESETS = {
    "bruker-1d": lambda: _bruker(1),
    "bruker-2d": lambda: _bruker(2),
    "bruker-3d": lambda: _bruker(3),
}
"""Scanner presets: the three OpenMPIData sequences of the Bruker preclinical scanner.

G = diag(−1, −1, 2) T/m/µ0; 12 mT/µ0 per driven axis; 2.5 MHz base frequency with dividers 102, 96,
99 (x, y, z); 1.25 MHz bandwidth; three orthogonal receive coils of 1 mT/A. The receiver's
``noise_density`` (2 nV/√Hz) and ``background_level`` (2 µV) are mpisim's "realistic" defaults,
chosen so that the detection limit of a single 2D frame lies in the µg-Fe range reported for this
class of scanner; they are not measured values of the Bruker system.
"""


def get_scanner(name_or_path):
    """A preset by name (``bruker-1d``/``-2d``/``-3d``) or a scanner TOML file by path."""
    if isinstance(name_or_path, Scanner):
        return name_or_path
    key = str(name_or_path)
    if key in PRESETS:
        return PRESETS[key]()
    if key.endswith(".toml") or Path(key).exists():
        return Scanner.load(key)
    raise MPISimError(f"unknown scanner preset {key!r}; presets: {', '.join(PRESETS)} (or a .toml file)")
