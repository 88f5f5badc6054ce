"""Typed metadata carried between modules: where data came from, a phantom's ground truth, what a
calibration file records, which stored frames a measurement holds.

A measurement, a system matrix or a reconstruction says what it knows through these small frozen
dataclasses instead of string-keyed dicts, so no module reaches through another's internals.
"""

from dataclasses import dataclass, field, replace

import numpy as np

from .errors import MPISimError

__all__ = ["Provenance", "Truth", "CalibrationInfo", "StoredFrames"]


@dataclass(frozen=True)
class Provenance:
    """Where data came from.

    source : the file they were read from, or "(in memory)"; is_simulation : MDF's ``isSimulation`` (None:
    not stated — a file written from it says it is simulated, a reconstruction of it that it is not);
    header : what :func:`mpisim.io.mdf.read_header` read from the file ({} in memory); scanner_info :
    the scanner's facility, manufacturer, name, operator and topology as a file states them (used when
    no :class:`~mpisim.scanner.Scanner` is known); written_to : the file a simulation was streamed into
    ("" when none); stream : how a simulation written at the sequence's pace kept it (frames, seconds,
    behind_s; :func:`mpisim.forward.stream_frames`), else {}.
    """

    source: str = "(in memory)"
    is_simulation: bool | None = None
    header: dict = field(default_factory=dict)
    scanner_info: dict = field(default_factory=dict)
    written_to: str = ""
    stream: dict = field(default_factory=dict)


@dataclass(frozen=True)
class CalibrationInfo:
    """The ``/calibration`` group of a calibration file: method; size (voxels per axis); field_of_view,
    center, delta_sample_size (m); snr (channels × bins, or None); positions (m); order ("xyz")."""

    method: str = ""
    size: np.ndarray | None = None
    field_of_view: np.ndarray | None = None
    center: np.ndarray | None = None
    delta_sample_size: np.ndarray | None = None
    snr: np.ndarray | None = None
    positions: np.ndarray | None = None
    order: str = "xyz"


@dataclass(frozen=True)
class StoredFrames:
    """How a measurement read from a file relates to the file's frames: ``frames`` the stored frame
    indices it holds (None: all), ``stored_is_background`` the file's background flags of every stored
    frame, ``rows_on_demand`` whether the data are a zero-size stand-in (a calibration whose rows are read
    when used) and ``row_itemsize`` the bytes of one stored matrix entry."""

    frames: np.ndarray | None = None
    stored_is_background: np.ndarray | None = None
    rows_on_demand: bool = False
    row_itemsize: int = 0


@dataclass(frozen=True)
class Truth:
    """Ground truth of a simulated phantom, as simulated or as recorded in ``/_mpisim/phantom``.

    name; concentration : (nx, ny, nz) mol Fe/L on the phantom's own grid of ``size`` voxels over
    ``field_of_view`` (m) centred at ``center`` (m); iron_mass : kg (None when not recorded);
    chambers : the phantom's chambers, each a dict with ``label``, ``center`` (m), ``volume`` (m³)
    and ``concentration`` (mol/L) — what :class:`mpisim.quant.Chambers` ROIs are drawn from.
    """

    name: str = ""
    concentration: np.ndarray | None = None
    size: tuple = ()
    field_of_view: tuple = ()
    center: tuple = ()
    iron_mass: float | None = None
    chambers: tuple = ()
    states: dict | None = None
    """{tracer state: (nx, ny, nz) mol Fe/L} of a multi-contrast phantom, or None."""

    @classmethod
    def of_phantom(cls, phantom):
        """The truth of a :class:`~mpisim.phantoms.Phantom` in memory."""
        g = phantom.grid
        return cls(phantom.name, phantom.concentration, tuple(g.shape), tuple(g.fov), tuple(g.center),
                   phantom.iron_mass, tuple(phantom.meta.get("chambers") or ()), phantom.states)

    def in_state(self, state):
        """The truth of the iron in one tracer state (a multi-contrast phantom), with its own concentration."""
        if not self.states or state not in self.states:
            raise MPISimError(f"the phantom records no iron in state {state!r}")
        return replace(self, concentration=self.states[state], iron_mass=None, states=None)

    @classmethod
    def from_record(cls, rec):
        """From the dict an MDF file's ``/_mpisim/phantom`` group reads as (see :func:`to_record`; a file
        records no iron mass, so ``iron_mass`` is None)."""
        return cls(rec.get("name", ""), rec.get("concentration"), tuple(np.ravel(rec.get("size", ()))),
                   tuple(np.ravel(rec.get("fieldOfView", ()))), tuple(np.ravel(rec.get("fieldOfViewCenter", ()))),
                   rec.get("ironMass"), tuple(rec.get("chambers") or ()), rec.get("states") or None)

    def to_record(self):
        """The dict the MDF writer stores in ``/_mpisim/phantom``."""
        out = {"name": self.name, "concentration": self.concentration, "size": np.array(self.size),
               "fieldOfView": np.array(self.field_of_view), "fieldOfViewCenter": np.array(self.center)}
        if self.iron_mass is not None:
            out["ironMass"] = self.iron_mass
        if self.chambers:
            out["chambers"] = list(self.chambers)
        if self.states:
            out["states"] = dict(self.states)
        return out
