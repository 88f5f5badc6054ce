"""Writing MDF v2.1 files: the mandatory groups, SI units (fields in T/µ0), Int8 flags,
``isSimulation = 1`` and an ``/_mpisim`` extension group with the scanner, tracer, settings and
ground truth as TOML/arrays.

The group writers (:func:`write_header`, :func:`write_tracer`, :func:`write_acquisition`,
:func:`write_flags`, :func:`write_extension`, :func:`write_truth`) are shared by every file mpisim
writes: measurements (:func:`write_mdf`), calibrations (:mod:`mpisim.systemmatrix`) and
reconstructions (:mod:`mpisim.io.reco_mdf`).
"""

import datetime
import math
import uuid

import numpy as np

from .. import __version__, tomlio
from ..errors import MPISimError
from ..metadata import Truth
from ..progress import Progress
from .atomic import atomic_path

__all__ = ["FLAGS", "MDF_VERSION", "write_acquisition", "write_extension", "write_flags", "write_header",
           "write_mdf", "write_string", "write_tracer", "write_truth"]

MDF_VERSION = "2.1.0"

FLAGS = ("isBackgroundCorrected", "isFastFrameAxis", "isFourierTransformed", "isFramePermutation",
         "isFrequencySelection", "isSparsityTransformed", "isSpectralLeakageCorrected", "isTransferFunctionCorrected")


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def h5py_string():
    """h5py's variable-length string type (h5py loaded on the first write, not when this module is imported)."""
    import h5py

    return h5py.string_dtype()


def write_string(h, path, value):
    """A variable-length UTF-8 string dataset (a list, tuple or array of values: a string array)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        h.create_dataset(path, data=np.array([str(v) for v in value], dtype=h5py_string()))
    else:
        h.create_dataset(path, data=str(value), dtype=h5py_string())


def write_header(h, *, name, description, scanner_meta, is_simulation=True):
    """Root version/uuid/time, /study, /experiment and /scanner."""
    write_string(h, "version", MDF_VERSION)
    write_string(h, "uuid", str(uuid.uuid4()))
    write_string(h, "time", _now())
    for g in ("study", "experiment"):
        write_string(h, f"{g}/name", name)
        write_string(h, f"{g}/description", description)
        write_string(h, f"{g}/uuid", str(uuid.uuid4()))
        h[f"{g}/number"] = np.int64(1)
    write_string(h, "study/time", _now())
    write_string(h, "experiment/subject", "phantom")
    h["experiment/isSimulation"] = np.int8(bool(is_simulation))
    for k in ("facility", "manufacturer", "name", "operator", "topology"):
        write_string(h, f"scanner/{k}", scanner_meta.get(k, ""))


def write_tracer(h, tracer, concentration, volume=None):
    """/tracer of one tracer at ``concentration`` (mol Fe/L) in ``volume`` (L); nothing when ``tracer`` is None."""
    if tracer is None:
        return
    write_string(h, "tracer/name", [tracer.name])
    write_string(h, "tracer/batch", ["simulated"])
    write_string(h, "tracer/vendor", ["mpisim"])
    write_string(h, "tracer/solute", ["Fe"])
    h["tracer/concentration"] = np.array([float(concentration)])
    h["tracer/volume"] = np.array([float(volume if volume is not None else 0.0)])
    write_string(h, "tracer/injectionTime", [_now()])


def write_acquisition(h, meas_like, num_frames, num_averages=1):
    """/acquisition. meas_like: an object with bandwidth, num_samples, drive_frequencies,
    drive_strengths, gradient, num_rx_channels, transfer_function, base_frequency, drive_phases and scanner (or
    None)."""
    sc = meas_like.scanner
    h["acquisition/gradient"] = np.asarray(meas_like.gradient, float).reshape(1, 1, 3, 3)
    h["acquisition/offsetField"] = np.zeros((1, 1, 3))
    h["acquisition/numAverages"] = np.int64(num_averages)
    h["acquisition/numFrames"] = np.int64(num_frames)
    h["acquisition/numPeriodsPerFrame"] = np.int64(1)
    write_string(h, "acquisition/startTime", _now())
    df = "acquisition/drivefield/"
    if sc is not None:
        base = sc.drive_field.base_frequency
        div = np.array([[c.divider] for c in sc.drive_field.channels], np.int64)
        phase = np.array([[[c.phase] for c in sc.drive_field.channels]])
        cycle = sc.drive_field.cycle
    else:
        base = getattr(meas_like, "base_frequency", None) or 2 * meas_like.bandwidth
        div = np.round(base / np.asarray(meas_like.drive_frequencies)).astype(np.int64)[:, None]
        phases = getattr(meas_like, "drive_phases", None)
        phase = np.asarray(np.zeros(len(div)) if phases is None else phases, float).reshape(1, -1, 1)
        cycle = math.lcm(*[int(d) for d in div.ravel()]) / base
    D = div.shape[0]
    h[df + "baseFrequency"] = float(base)
    h[df + "cycle"] = float(cycle)
    h[df + "divider"] = div
    h[df + "numChannels"] = np.int64(D)
    h[df + "phase"] = phase
    h[df + "strength"] = np.asarray(meas_like.drive_strengths, float).reshape(1, D, 1)
    write_string(h, df + "waveform", np.full((D, 1), "sine"))
    rx = "acquisition/receiver/"
    C = meas_like.num_rx_channels
    h[rx + "bandwidth"] = float(meas_like.bandwidth)
    h[rx + "numChannels"] = np.int64(C)
    h[rx + "numSamplingPoints"] = np.int64(meas_like.num_samples)
    write_string(h, rx + "unit", "V")
    h[rx + "dataConversionFactor"] = np.tile([1.0, 0.0], (C, 1))
    if meas_like.transfer_function is not None:
        h[rx + "transferFunction"] = np.asarray(meas_like.transfer_function, complex)


def write_flags(h, **flags):
    """The eight /measurement/is* flags as Int8, unset ones 0."""
    for n in FLAGS:
        h[f"measurement/{n}"] = np.int8(bool(flags.get(n, False)))


def write_extension(h, scanner=None, tracer=None, settings=None, phantom=None, extra=None):
    """/_mpisim: version, scanner/tracer/settings as TOML, the phantom's ground truth, and ``extra``
    (strings as strings, anything else as a dataset)."""
    write_string(h, "_mpisim/version", __version__)
    if scanner is not None:
        write_string(h, "_mpisim/scanner", scanner.to_toml())
    if tracer is not None:
        write_string(h, "_mpisim/tracer", tomlio.dumps(tracer.to_dict()))
    if settings is not None:
        write_string(h, "_mpisim/settings", tomlio.dumps(settings.to_dict()))
    if phantom is not None:
        write_truth(h, Truth.of_phantom(phantom).to_record())
    for k, v in (extra or {}).items():
        if isinstance(v, str):
            write_string(h, f"_mpisim/{k}", v)
        else:
            h[f"_mpisim/{k}"] = v


def write_truth(h, truth):
    """Write a ground-truth dict (concentration (nx, ny, nz) in mol Fe/L on its grid) to /_mpisim/phantom."""
    g = h.require_group("_mpisim/phantom")
    write_string(g, "name", truth["name"])
    g["concentration"] = np.asarray(truth["concentration"], float)
    g["shape"] = np.asarray(truth["size"], np.int64)
    g["fieldOfView"] = np.asarray(truth["fieldOfView"], float)
    g["fieldOfViewCenter"] = np.asarray(truth["fieldOfViewCenter"], float)
    if "ironMass" in truth:
        g["ironMass"] = float(truth["ironMass"])
    if truth.get("chambers"):
        write_string(g, "chambers", tomlio.dumps({"chamber": list(truth["chambers"])}))
    for state, conc in (truth.get("states") or {}).items():
        g[f"states/{state}"] = np.asarray(conc, float)


def write_mdf(path, meas, overwrite=False, name="mpisim simulation", frames=None, block_frames=16):
    """Write a :class:`Measurement` (time data) as an MDF v2.1 measurement file (atomically).

    ``frames``: an object whose ``frames(a, b)`` gives frames a..b−1 (e.g.
    :class:`mpisim.forward.FrameSource`), written ``block_frames`` at a time instead of
    ``meas.data`` (which then only gives the shape's other axes)."""
    if meas.frequency_domain:
        raise MPISimError("write_mdf writes time-domain measurements; use mpisim convert for spectra")
    sc = meas.scanner
    scanner_meta = ({"facility": sc.facility, "manufacturer": sc.manufacturer, "name": sc.name,
                     "operator": "mpisim", "topology": sc.topology} if sc is not None else
                    meas.provenance.scanner_info or {"topology": "FFP"})
    phantom = meas.phantom
    with atomic_path(path, overwrite) as tmp:
        import h5py             # h5py where start-up matters: simulate imports this module

        stated = meas.provenance.is_simulation
        with h5py.File(tmp, "w") as h:
            write_header(h, name=name, description=f"written by mpisim {__version__}", scanner_meta=scanner_meta,
                         is_simulation=True if stated is None else bool(stated))
            conc = float(phantom.concentration.max()) if phantom is not None else 0.0
            vol = (float((phantom.concentration > 0).sum() * phantom.grid.voxel_volume / 1e-3)
                   if phantom is not None else 0.0)
            write_tracer(h, meas.tracer, conc, vol)
            write_acquisition(h, meas, meas.num_frames, meas.num_averages)
            if frames is None:
                h.create_dataset("measurement/data", data=meas.data)
            else:
                _write_frames(h, meas, frames, block_frames)
            write_flags(h)
            h["measurement/isBackgroundFrame"] = meas.is_background.astype(np.int8)
            write_extension(h, sc, meas.tracer, meas.settings, phantom)
            for k, v in (getattr(frames, "extension", None) or {}).items():      # e.g. a series' truth per frame
                h[f"_mpisim/{k}"] = v
    return path


def _write_frames(h, meas, frames, block_frames):
    """/measurement/data filled from ``frames.frames(a, b)``, ``block_frames`` at a time."""
    N, J, C = meas.num_frames, meas.data.shape[1], meas.num_rx_channels
    ds = h.create_dataset("measurement/data", shape=(N, J, C, meas.num_samples), dtype=meas.data.dtype)
    with Progress(N, "frames", enabled=N > block_frames) as bar:
        for a in range(0, N, block_frames):
            b = min(N, a + block_frames)
            ds[a:b] = frames.frames(a, b)
            bar.update(b - a)
