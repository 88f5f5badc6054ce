"""Reconstruction in three steps — :mod:`~mpisim.reco.assemble`, :mod:`~mpisim.reco.solve`,
:mod:`~mpisim.reco.uncertainty` — behind :func:`reconstruct`; the solvers :func:`kaczmarz` (numpy, numba,
CUDA) and :func:`cgnr`."""

from .cgnr import cgnr
from .kaczmarz import kaczmarz
from .reconstruct import reconstruct

__all__ = ["cgnr", "kaczmarz", "reconstruct"]
