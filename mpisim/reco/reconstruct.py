"""``reconstruct(measurement, system_matrix)``: the iron map (mol Fe/L) in three steps.

1. :func:`~mpisim.reco.assemble.assemble` the problem (frequency selection, background, weighting);
2. :func:`~mpisim.reco.solve.solve` it (Kaczmarz or CGNR, λ, the stopping rule);
3. :func:`~mpisim.reco.uncertainty.realisations`: the noise realisations behind the error bars.

Nothing here opens a file: the command line (or :func:`mpisim.io.frame_file.open_inputs`) loads the
measurement, the system matrix, an empty-scanner measurement and a transfer function first.
"""

import time

import numpy as np

from .. import backend as B
from ..errors import MPISimError
from ..frames import as_frames
from ..operator import JointSystemMatrix, SystemMatrix
from ..reconstruction import Reconstruction, RecoParams
from .assemble import assemble
from .solve import solve
from .uncertainty import linear, noise_draws, realisations

__all__ = ["reconstruct"]


def reconstruct(measurement, system_matrix, params=None, *, empty=None, tf=None, backend="auto",
                impl="auto", progress=False, **kw):
    """Reconstruct concentration images from a measurement and a system matrix.

    Parameters
    ----------
    measurement : :class:`~mpisim.measurement.Measurement`, or a frame source
        (:func:`mpisim.io.frame_file.open_measurement` of an MDF file: only the background frames and the
        frames reconstructed are read, a block at a time, so memory does not grow with the acquisition).
    system_matrix : :class:`~mpisim.operator.SystemMatrix` (in memory, or on disk from
        :func:`mpisim.load_system_matrix`: only the selected rows are read); several — a list, a dict
        {contrast: matrix} or a :class:`~mpisim.operator.JointSystemMatrix` — for a multi-contrast
        reconstruction: the joint system [S₁ S₂ …] is solved for one image per contrast (``contrasts``,
        :meth:`~mpisim.reconstruction.Reconstruction.contrast`), ``image`` being their sum.
    params : :class:`~mpisim.reconstruction.RecoParams`; keyword arguments with the flat parameter names
        (``lam=1e-3``, ``min_freq=80e3``...) override its fields.
    empty : the empty-scanner :class:`~mpisim.measurement.Measurement` when ``params`` names one as
        background. tf : the (C, K) complex transfer function that ``params.preprocessing.transfer_function``
        names, loaded (None: the one the data state).
    backend : "auto" | "numpy" | "cupy" for the solver. impl : Kaczmarz implementation
        (:func:`mpisim.reco.kaczmarz.kaczmarz`). progress : a progress bar over the sweeps (CPU) on a terminal.

    Returns
    -------
    :class:`~mpisim.reconstruction.Reconstruction` with images (F, N) in mol Fe/L (the system
    matrix's unit). ``info`` records what the automatic choices chose (band, λ, sweeps and why they
    stopped, the noise level and where it came from); ``noise`` holds the reconstructed noise
    realisations behind the error bars (see :func:`mpisim.quant.roi_total`).
    """
    params = params or RecoParams()
    if kw:
        params = params.replace(**kw)
    source = as_frames(measurement)
    if source is None:
        raise MPISimError(f"measurement must be a Measurement or a frame source (open a file with "
                          f"mpisim.open_measurement), got {type(measurement).__name__}")
    if isinstance(system_matrix, (list, tuple, dict)):
        system_matrix = (JointSystemMatrix(list(system_matrix.values()), list(system_matrix)) if isinstance(
            system_matrix, dict) else JointSystemMatrix(system_matrix))
    if not isinstance(system_matrix, (SystemMatrix, JointSystemMatrix)):
        raise MPISimError(f"system_matrix must be a SystemMatrix (open a file with mpisim.load_system_matrix), "
                          f"got {type(system_matrix).__name__}")
    t0 = time.perf_counter()
    problem = assemble(source, system_matrix, params, empty, tf)
    use = B.resolve(backend)
    t1 = time.perf_counter()
    draws = noise_draws(problem, params) if linear(problem, params) else None
    solution = solve(problem, params.solver, use, impl, progress, ride_along=draws if use == "cupy" else None)
    noise, noise_info = realisations(problem, solution, params, draws)
    t2 = time.perf_counter()
    if isinstance(system_matrix, JointSystemMatrix):
        info = _info(problem, solution, noise, noise_info, params, use, source, system_matrix, t1 - t0, t2 - t1)
        return Reconstruction.of_contrasts(solution.img.T, system_matrix.grid, params, system_matrix.names,
                                           system_matrix.unit, {**info, "contrasts": list(system_matrix.names),
                                                                "system_matrices": [m.origin for m in
                                                                                    system_matrix.matrices]},
                                           noise, source.head, source.head.truth)
    return Reconstruction(solution.img.T, system_matrix.grid, params, system_matrix.unit,
                          _info(problem, solution, noise, noise_info, params, use, source, system_matrix,
                                t1 - t0, t2 - t1),
                          noise, source.head, source.head.truth)


def _info(problem, solution, realisations, noise_info, params, use, source, sm, assemble_s, solve_s):
    """What the reconstruction chose and how long it took (recorded in the output file)."""
    p, img = problem, solution.img
    return {"rows": int(p.A.shape[0]), "zero_rows_dropped": p.info["zero_rows_dropped"], "voxels": int(sm.grid.size),
            "unknowns": int(p.A.shape[1]),
            "frames": int(img.shape[1]), "background_subtracted": bool(p.info["background_subtracted"]),
            "backend": use, "solve_seconds": solve_s, "total_seconds": assemble_s + solve_s,
            "channels": p.info["channels"], "rows_per_channel": p.info["rows_per_channel"],
            "lambda": float(solution.lam), "lambda_rule": "auto" if params.solver.lam == "auto" else "fixed",
            **solution.lam_info, "sweeps": int(solution.sweeps), "stopped_because": solution.why,
            **{k: v for k, v in p.info.items() if k not in ("zero_rows_dropped", "background_subtracted", "channels",
                                                            "rows_per_channel")},
            **noise_info, "positivity": bool(p.positive), "positivity_rule": str(params.solver.enforce_positive),
            "total_iron_visibility": p.visibility,
            "uncertainty_samples": 0 if realisations is None else int(realisations.shape[-2]),
            "measurement": source.head.source, "system_matrix": sm.origin}
