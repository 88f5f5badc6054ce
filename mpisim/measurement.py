"""In-memory MPI data: a measurement (time or frequency domain) with the metadata that made it."""

from dataclasses import dataclass, field

import numpy as np

from .backend import rfft
from .errors import MPISimError
from .metadata import CalibrationInfo, Provenance, StoredFrames, Truth

__all__ = ["in_band", "Measurement"]


def in_band(frequencies, min_freq=0.0, max_freq=0.0):
    """Boolean mask of ``frequencies`` (Hz) within [min_freq, max_freq]; max_freq 0 = no upper limit."""
    f = np.asarray(frequencies)
    keep = f >= min_freq
    if max_freq:
        keep &= f <= max_freq
    return keep


@dataclass(eq=False)
class Measurement:
    """MPI receive data and its acquisition parameters.

    data : (N, J, C, V) float time samples in V, or (N, J, C, K) complex spectra when
        ``frequency_domain`` (unnormalised rfft of one period).
    is_background : (N,) bool, frames recorded without a sample.
    bandwidth : receiver bandwidth in Hz (sampling rate = 2 · bandwidth).
    num_samples : samples per period V.
    drive_frequencies : (D,) Hz; drive_strengths : (D,) T/µ0; gradient : (3, 3) T/m/µ0.
    transfer_function : (C, K) complex or None: the chain the data still contains.
    frequency_selection : (K',) 0-based bins kept, or None for all K = V/2 + 1 bins.
    scanner, tracer : the mpisim objects when known (simulated data), else None.
    provenance : :class:`~mpisim.metadata.Provenance` (source file, header, simulation or not).
    phantom : the simulated :class:`~mpisim.phantoms.Phantom` (in memory), or None; recorded_truth : the
        ground truth a file records (:class:`~mpisim.metadata.Truth`), or None — :attr:`truth` is either.
    settings : the :class:`~mpisim.forward.SimulationSettings` that made simulated data (in memory);
        stated_settings : the settings dict a file states (``/_mpisim/settings``), or None.
    tracer_concentration : mol Fe/L of the sample (``/tracer/concentration``; a calibration's delta
        sample), or None. calibration : :class:`~mpisim.metadata.CalibrationInfo` of a calibration file.
    base_frequency : Hz, drive_phases : (D,) rad, as a file states them (None: from ``scanner``).
    stored : :class:`~mpisim.metadata.StoredFrames` for data read from a file, else None.
    """

    data: np.ndarray
    is_background: np.ndarray
    bandwidth: float
    num_samples: int
    drive_frequencies: np.ndarray
    drive_strengths: np.ndarray
    gradient: np.ndarray
    frequency_domain: bool = False
    transfer_function: np.ndarray | None = None
    frequency_selection: np.ndarray | None = None
    num_averages: int = 1
    scanner: object = None
    tracer: object = None
    provenance: Provenance = field(default_factory=Provenance)
    phantom: object = None
    recorded_truth: Truth | None = None
    settings: object = None
    stated_settings: dict | None = None
    tracer_concentration: float | None = None
    calibration: CalibrationInfo | None = None
    base_frequency: float | None = None
    drive_phases: np.ndarray | None = None
    stored: StoredFrames | None = None

    def __post_init__(self):
        self.is_background = np.asarray(self.is_background, dtype=bool)
        if self.data.ndim != 4:
            raise MPISimError(f"measurement data must be 4-D (frames, periods, channels, samples), got {self.data.shape}")
        if self.is_background.shape != (self.data.shape[0],):
            raise MPISimError(f"isBackgroundFrame has {self.is_background.size} entries for "
                              f"{self.data.shape[0]} frames")

    @property
    def num_frames(self):
        return self.data.shape[0]

    @property
    def num_rx_channels(self):
        return self.data.shape[2]

    @property
    def sampling_rate(self):
        return 2.0 * self.bandwidth

    @property
    def all_frequencies(self):
        """Full rfft frequency axis (K,) in Hz."""
        return np.fft.rfftfreq(self.num_samples, 1.0 / self.sampling_rate)

    @property
    def frequencies(self):
        """Frequencies (Hz) of the bins in the spectra (after any frequency selection)."""
        f = self.all_frequencies
        return f if self.frequency_selection is None else f[self.frequency_selection]

    def spectra(self):
        """(N, J, C, K) complex spectra (rfft along the sample axis when the data are time samples)."""
        if self.frequency_domain:
            return self.data

        return rfft(self.data, axis=-1)

    def full_spectra(self):
        """(N, J, C, V/2 + 1) spectra on the full rfft axis; bins left out by a frequency selection
        are zero."""
        spec = self.spectra()
        if self.frequency_selection is None:
            return spec
        full = np.zeros(spec.shape[:3] + (self.num_samples // 2 + 1,), spec.dtype)
        full[..., self.frequency_selection] = spec
        return full

    @property
    def truth(self):
        """Ground truth of the phantom (:class:`~mpisim.metadata.Truth`): of the simulated phantom in memory,
        or as the file records it; None when unknown."""
        if self.phantom is not None:
            return Truth.of_phantom(self.phantom)
        return self.recorded_truth

    @property
    def source(self):
        """The file the data were read from, or "(in memory)"."""
        return self.provenance.source

    @property
    def foreground_frames(self):
        return np.flatnonzero(~self.is_background)

    @property
    def background_frames(self):
        return np.flatnonzero(self.is_background)
