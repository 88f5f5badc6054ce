"""Reconstruction: preprocessing, Kaczmarz (numpy/numba/CUDA), CGNR and ``reconstruct()``."""

from .cgnr import cgnr
from .kaczmarz import kaczmarz
from .preprocess import RecoParams
from .reconstruct import Reconstruction, reconstruct

__all__ = ["cgnr", "kaczmarz", "RecoParams", "Reconstruction", "reconstruct"]
