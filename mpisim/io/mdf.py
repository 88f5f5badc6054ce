"""MDF v2 (Magnetic Particle Imaging Data Format) files: the public front door.

Layout as in the MDF 2.1.0 specification, dimensions slowest-first (the h5py shape). The work is
done in three modules, one job each: :mod:`mpisim.io.mdf_write` (the writer and its group writers),
:mod:`mpisim.io.mdf_fields` (the field checks every file passes before it is read) and
:mod:`mpisim.io.mdf_read` (the reader, tolerant of real files' deviations). This module gives the
names users call.
"""

from .mdf_fields import MAX_DATA
from .mdf_read import format_info, guarded, read_calibration, read_header, read_mdf, read_rows
from .mdf_write import MDF_VERSION, write_mdf

__all__ = ["MAX_DATA", "MDF_VERSION", "format_info", "guarded", "read_calibration", "read_header", "read_mdf",
           "read_rows", "write_mdf"]
