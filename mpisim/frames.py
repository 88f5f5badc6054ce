"""A measurement's frames, read when they are needed (the frame source a reconstruction draws from).

:class:`MeasurementFrames` serves a :class:`~mpisim.measurement.Measurement` in memory;
:class:`mpisim.io.frame_file.FileFrames` serves an MDF file's frames a block at a time. Either way
``head`` is the measurement's metadata, so a reconstruction of a long acquisition holds its background
frames and one block of frames at a time, never the whole measurement.
"""

import numpy as np

from .measurement import Measurement

__all__ = ["MeasurementFrames", "as_frames"]


class MeasurementFrames:
    """The frames of a :class:`~mpisim.measurement.Measurement` in memory (``head`` is the measurement)."""

    BLOCK_BYTES = 64 << 20
    """Budget of one block of frames: its time data and spectra (bytes)."""

    def __init__(self, measurement):
        self.head = measurement

    @property
    def num_frames(self):
        return self.head.num_frames

    def read(self, idx):
        """A Measurement holding the stored frames ``idx`` (increasing indices)."""
        idx = np.asarray(idx, np.int64)
        m = self.head
        return Measurement(**{**m.__dict__, "data": m.data[idx], "is_background": m.is_background[idx]})

    def frames_per_block(self, multiple=1):
        """Frames per block within :attr:`BLOCK_BYTES` (time data in float64 and complex spectra), a
        multiple of ``multiple`` (the frames averaged into one)."""
        h = self.head
        per_frame = h.data.shape[1] * h.num_rx_channels * (h.num_samples // 2 + 1) * 16 * 3
        n = max(1, self.BLOCK_BYTES // max(per_frame, 1))
        return max(multiple, n // multiple * multiple)


def as_frames(measurement):
    """A frame source for a :class:`~mpisim.measurement.Measurement` (or the frame source itself); None for
    anything else (a file is opened by :func:`mpisim.io.frame_file.open_measurement`)."""
    if isinstance(measurement, MeasurementFrames):
        return measurement
    if isinstance(measurement, Measurement):
        return MeasurementFrames(measurement)
    return None
