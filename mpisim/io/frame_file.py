"""An MDF measurement file as a frame source (metadata now, frames when a reconstruction reads them), and
the thin loader that opens every file a reconstruction names."""

import numpy as np

from ..frames import MeasurementFrames, as_frames
from ..operator import SystemMatrix
from ..reconstruction import RecoParams
from .mdf_read import read_calibration, read_mdf
from .sm_file import load_system_matrix
from .transfer_file import load_transfer_function

__all__ = ["FileFrames", "open_measurement", "open_inputs"]


class FileFrames(MeasurementFrames):
    """The frames of an MDF file: ``head`` is a Measurement whose data are a zero-size stand-in (one
    per stored frame); :meth:`read` reads only the frames asked for."""

    def __init__(self, path):
        super().__init__(read_calibration(path))
        self.path = str(path)

    def read(self, idx):
        return read_mdf(self.path, frames=np.asarray(idx, np.int64))


def open_measurement(measurement):
    """A frame source for a measurement: a :class:`~mpisim.measurement.Measurement` in memory, or the
    path of an MDF file (only its metadata are read now)."""
    return as_frames(measurement) or FileFrames(measurement)


def open_inputs(measurement, system_matrix, params=None):
    """The thin loader in front of :func:`mpisim.reconstruct`: opens what ``params`` and the arguments
    name as files and returns the keyword arguments of ``reconstruct`` — ``measurement`` (a frame source),
    ``system_matrix`` (on disk: rows read when used), ``empty`` (the empty-scanner measurement that
    ``params.preprocessing.background`` names, or None; a list of several matrices for a multi-contrast
    reconstruction) and ``tf`` ((C, K) complex from
    ``params.preprocessing.transfer_function``, or None)."""
    params = params or RecoParams()
    source = open_measurement(measurement)
    if isinstance(system_matrix, (list, tuple)):          # several: a multi-contrast reconstruction
        sm = [m if isinstance(m, SystemMatrix) else load_system_matrix(m) for m in system_matrix]
        sm = sm[0] if len(sm) == 1 else sm
    else:
        sm = system_matrix if isinstance(system_matrix, SystemMatrix) else load_system_matrix(system_matrix)
    pre = params.preprocessing
    tf = None
    if pre.transfer_function:
        head = source.head
        tf = load_transfer_function(pre.transfer_function).at(head.all_frequencies, head.num_rx_channels)
    empty = None
    if pre.background not in ("auto", "none"):
        empty = read_mdf(pre.background)
    return {"measurement": source, "system_matrix": sm, "empty": empty, "tf": tf}
