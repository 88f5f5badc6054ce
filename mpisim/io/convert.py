"""``mpisim convert``: MDF measurement files between time and frequency domain, with frequency
selection. Every group other than /measurement is copied unchanged; the input is read-only."""

import warnings

import h5py
import numpy as np

from ..backend import irfft
from ..errors import MPISimError
from ..measurement import in_band
from .atomic import atomic_path, check_free_space
from .h5 import open_h5
from .mdf_read import guarded, read_mdf

__all__ = ["convert"]


def _drop_nonfinite_attributes(h):
    """Delete every numeric attribute holding NaN or Inf from the file being written (MDF defines no
    attributes; one that is not finite is never meaningful); returns their names."""
    dropped = []

    def visit(name, obj):
        for key in list(obj.attrs):
            try:
                a = np.asarray(obj.attrs[key])
            except Exception:                    # an attribute h5py cannot read is not copied either
                a = np.array(np.nan)
            if a.dtype.kind in "fc" and not np.all(np.isfinite(a)):
                del obj.attrs[key]
                dropped.append(f"/{name}@{key}".replace("//", "/"))

    visit("", h)
    h.visititems(visit)
    return dropped


@guarded
def convert(src, dst, to="frequency", min_freq=0.0, max_freq=0.0, overwrite=False, dtype=None):
    """Write ``dst`` with the measurement of ``src`` as spectra (``to="frequency"``, optionally only
    bins in [min_freq, max_freq] Hz, flagged with isFrequencySelection) or as time samples
    (``to="time"``, needs all frequency bins). Returns (shape, number of bins)."""
    if to not in ("frequency", "time"):
        raise MPISimError(f"--to must be 'frequency' or 'time', got {to!r}")
    meas = read_mdf(src)
    if meas.calibration is not None:
        raise MPISimError(f"{src}: is a calibration (system-matrix) file; convert handles measurements")
    freqs = meas.all_frequencies
    if to == "frequency":
        spec = meas.full_spectra()
        bins = np.flatnonzero(in_band(freqs, min_freq, max_freq))
        if bins.size == 0:
            raise MPISimError(f"no frequency bins between {min_freq:g} and {max_freq or freqs[-1]:g} Hz")
        data = spec[..., bins]
        if dtype:
            data = data.astype(dtype)
        selected = bins.size < freqs.size
    else:
        if not meas.frequency_domain:
            raise MPISimError(f"{src}: already time-domain data")
        if meas.frequency_selection is not None and meas.frequency_selection.size < freqs.size:
            raise MPISimError(f"{src}: frequency-selected spectra cannot be turned back into time samples")
        data = irfft(meas.data, meas.num_samples, axis=-1)
        bins, selected = None, False
    check_free_space([(dst, data.nbytes + (1 << 20))], "the converted file")
    with open_h5(src) as hin, atomic_path(dst, overwrite) as tmp:
        with h5py.File(tmp, "w") as h:
            for name in hin:
                if name != "measurement":
                    hin.copy(hin[name], h, name=name)
            g = h.create_group("measurement")
            for name in hin.get("measurement", {}):
                if name in ("data", "isFourierTransformed", "isFrequencySelection", "frequencySelection",
                            "isFastFrameAxis", "isTransposed", "isFramePermutation", "framePermutation"):
                    continue
                hin.copy(hin["measurement"][name], g, name=name)
            g["data"] = data
            g["isFourierTransformed"] = np.int8(to == "frequency")
            g["isFrequencySelection"] = np.int8(selected)
            g["isFastFrameAxis"] = np.int8(0)
            g["isFramePermutation"] = np.int8(0)
            if selected:
                g["frequencySelection"] = (bins + 1).astype(np.int64)
            if "acquisition/receiver/dataConversionFactor" in h:
                del h["acquisition/receiver/dataConversionFactor"]
                h["acquisition/receiver/dataConversionFactor"] = np.tile([1.0, 0.0], (data.shape[2], 1))
            if "acquisition/numFrames" in h:
                del h["acquisition/numFrames"]
            h["acquisition/numFrames"] = np.int64(data.shape[0])
            dropped = _drop_nonfinite_attributes(h)
    if dropped:
        warnings.warn(f"{src}: {len(dropped)} attribute(s) holding NaN or Inf not copied "
                      f"({', '.join(dropped[:3])}{', …' if len(dropped) > 3 else ''})")
    return data.shape, (freqs.size if bins is None else bins.size)
