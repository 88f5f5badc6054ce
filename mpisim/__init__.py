"""mpisim — magnetic particle imaging (MPI) scanner simulator and reconstructor.

The public API is the names below (``mpisim.__all__``; the docs' "API summary" page groups them): the
verbs, the nouns they take and give, their parameter classes and the loaders. Importing mpisim is
fast and never touches cupy or a GPU: each name is imported from its module on first use.
"""

__version__ = "0.1.0"
PHYSICS_VERSION = "1"
"""Bumped whenever a change alters simulated numbers (part of the system-matrix cache key)."""

API = {
    "verbs": {
        "simulate": "forward", "build_system_matrix": "systemmatrix", "reconstruct": "reco.reconstruct",
        "quantify": "quant", "quantify_sets": "quant", "kaczmarz": "reco.kaczmarz", "cgnr": "reco.cgnr",
        "simulate_series": "forward", "follow": "live",
    },
    "nouns": {
        "Scanner": "scanner", "Tracer": "particles", "Grid": "grid", "Phantom": "phantoms",
        "Measurement": "measurement", "SystemMatrix": "operator", "JointSystemMatrix": "operator", "Reconstruction": "reconstruction",
        "Truth": "metadata", "QuantResult": "quant", "RoiResult": "quant",
    },
    "ROIs (metres)": {
        "Sphere": "quant", "Box": "quant", "Cylinder": "quant", "Everything": "quant", "Chambers": "quant", "MaskRoi": "io.nifti",
        "Fiducial": "quant",
    },
    "parameters": {
        "SimulationSettings": "forward", "CalibrationSettings": "systemmatrix", "RecoParams": "reconstruction",
        "FrequencySelection": "reconstruction", "Preprocessing": "reconstruction", "SolverParams": "reconstruction",
        "UncertaintyParams": "reconstruction", "LiveSettings": "live",
    },
    "constructors and loaders": {
        "get_scanner": "scanner", "PRESETS": "scanner", "default_tracer": "particles",
        "cell_label_tracer": "particles", "get_phantom": "phantoms",
        "default_grid": "systemmatrix", "read_mdf": "io.mdf", "write_mdf": "io.mdf",
        "load_system_matrix": "io.sm_file", "open_measurement": "io.frame_file", "open_inputs": "io.frame_file",
        "read_reconstruction": "io.reco_mdf", "write_reconstruction": "io.reco_mdf", "write_nifti": "io.nifti",
    },
    "physics and errors": {
        "langevin": "particles", "langevin_derivative": "particles", "MPISimError": "errors",
    },
}
"""The curated public API: group → {name: module it lives in}."""

_LAZY = {name: mod for group in API.values() for name, mod in group.items()}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):
    if name in _LAZY:
        import importlib      # only here: `import mpisim` stays cheap

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'mpisim' has no attribute {name!r}")
