"""The field checks of MDF files: every numeric metadata field finite and inside a physical range
(:data:`RANGES`), data magnitudes below :data:`MAX_DATA`, checksums of their own type.

Applied to every file mpisim reads (:mod:`mpisim.io.mdf_read`, :mod:`mpisim.io.reco_mdf`) before
anything else is taken from it; ``tests/test_fuzz_fields.py`` keeps them complete.
"""

import numpy as np

from ..errors import MPISimError
from .h5 import datasets

__all__ = ["BULK", "MAX_DATA", "RANGES", "check_metadata"]


BULK = ("measurement/data", "reconstruction/data", "_mpisim/noiseRealisations", "_mpisim/rowChecksum",
        "calibration/snr", "acquisition/receiver/transferFunction", "calibration/positions", "reconstruction/positions")
"""Datasets too big to scan in the header; each is checked where it is read."""

MAX_DATA = 1e12
"""Largest magnitude a measurement or calibration value may have (after the data conversion factor):
far beyond any receive voltage or ADC count, and small enough that sums of squares stay finite."""

RANGES = {
    # field: (low, high, low excluded); a value outside is refused naming the field
    "acquisition/receiver/bandwidth": (0, 1e10, True), "acquisition/drivefield/baseFrequency": (0, 1e10, True),
    "acquisition/drivefield/divider": (0, 2 ** 31, True), "acquisition/drivefield/numChannels": (1, 64, False),
    "acquisition/drivefield/strength": (-10, 10, False), "acquisition/drivefield/phase": (-1e3, 1e3, False),
    "acquisition/drivefield/cycle": (0, 1e3, True),
    "acquisition/gradient": (-1e3, 1e3, False), "acquisition/offsetField": (-10, 10, False),
    "acquisition/receiver/numSamplingPoints": (1, 2 ** 26, False), "acquisition/receiver/numChannels": (1, 1024, False),
    "acquisition/receiver/dataConversionFactor": (-1e9, 1e9, False),
    "acquisition/numAverages": (0, 2 ** 31, False), "acquisition/numFrames": (0, 2 ** 31, False),
    "acquisition/numPeriodsPerFrame": (1, 2 ** 31, False), "acquisition/numPeriods": (1, 2 ** 31, False),
    "tracer/concentration": (0, 1e3, False), "tracer/volume": (0, 1e3, False),
    "calibration/size": (1, 2 ** 16, False), "calibration/fieldOfView": (0, 10, False),
    "calibration/fieldOfViewCenter": (-10, 10, False), "calibration/deltaSampleSize": (0, 10, False),
    "reconstruction/size": (1, 2 ** 16, False), "reconstruction/fieldOfView": (0, 10, False),
    "reconstruction/fieldOfViewCenter": (-10, 10, False),
    "_mpisim/phantom/shape": (1, 2 ** 16, False), "_mpisim/phantom/fieldOfView": (0, 10, False),
    "_mpisim/phantom/fieldOfViewCenter": (-10, 10, False), "_mpisim/phantom/concentration": (0, 1e3, False),
    "_mpisim/phantom/ironMass": (0, 1e3, False), "_mpisim/noiseSigmaBin": (0, 1e12, False),
    "measurement/frequencySelection": (1, 2 ** 26, False), "measurement/framePermutation": (1, 2 ** 31, False),
}
"""Physical ranges of the numeric metadata (SI units: Hz, T/µ0, T/m/µ0, m, mol/L, L, kg): wide enough
for any real scanner, narrow enough that nothing downstream overflows."""


def check_metadata(r):
    """Every numeric metadata field finite, the known ones inside :data:`RANGES`, the checksums of
    their own type: a one-line error naming the field (bulk data are checked where they are read)."""
    h, path = r.h, r.path
    for n in datasets(h):
        ds = h[n]
        if n in BULK or ds.dtype.kind not in "biufc" or ds.size is None or ds.size > 1_000_000:
            continue
        try:
            a = ds[()]
        except Exception as e:
            raise MPISimError(f"{path}: /{n} cannot be read ({str(e).splitlines()[0][:80]})") from None
        a = np.asarray(a)
        if a.dtype.kind in "fc" and not np.all(np.isfinite(a)):
            raise MPISimError(f"{path}: /{n} holds NaN or Inf")
        if n in RANGES and a.size:
            lo, hi, open_low = RANGES[n]
            vals = np.abs(a) if a.dtype.kind == "c" else a
            bad = (vals > hi) | (vals < lo) | ((vals == lo) if open_low else False)
            if np.any(bad):
                x = vals.ravel()[int(np.flatnonzero(bad.ravel())[0])]
                raise MPISimError(f"{path}: /{n} = {x:.6g} is outside its physical range "
                                  f"({'> ' if open_low else ''}{lo:g} to {hi:g})")
    if "_mpisim/rowChecksum" in h and h["_mpisim/rowChecksum"].dtype != np.uint64:
        raise MPISimError(f"{path}: /_mpisim/rowChecksum is {h['_mpisim/rowChecksum'].dtype}, not uint64 "
                          f"(damaged file)")
