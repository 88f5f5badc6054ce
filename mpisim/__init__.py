"""mpisim — magnetic particle imaging (MPI) scanner simulator and reconstructor.

Importing mpisim is fast and never touches cupy or a GPU; submodules load on first use.
"""

__version__ = "0.1.0"
PHYSICS_VERSION = "1"
"""Bumped whenever a change alters simulated numbers (part of the system-matrix cache key)."""

_LAZY = {
    "Tracer": "particles", "default_tracer": "particles", "langevin": "particles",
    "langevin_derivative": "particles",
    "Scanner": "scanner", "get_scanner": "scanner", "PRESETS": "scanner",
    "Grid": "grid",
    "simulate": "forward", "SimulationSettings": "forward",
    "Measurement": "measurement",
    "Phantom": "phantoms", "get_phantom": "phantoms",
    "read_mdf": "io.mdf", "write_mdf": "io.mdf",
    "build_system_matrix": "systemmatrix", "SystemMatrix": "operator",
    "load_system_matrix": "io.sm_file",
    "kaczmarz": "reco.kaczmarz", "cgnr": "reco.cgnr", "reconstruct": "reco.reconstruct",
    "MPISimError": "errors",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        mod = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(mod, name)
    raise AttributeError(f"module 'mpisim' has no attribute {name!r}")
