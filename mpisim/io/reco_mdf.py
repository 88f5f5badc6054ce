"""MDF files holding reconstructions (``/reconstruction``), with every parameter recorded."""

import h5py
import numpy as np

from .. import __version__
from .. import tomlio
from ..errors import MPISimError
from ..grid import Grid
from ..metadata import Truth
from ..reconstruction import Reconstruction, RecoParams
from .atomic import atomic_path
from .h5 import open_h5
from .mdf_fields import check_metadata
from .mdf_read import Reader, guarded, read_truth
from .mdf_write import write_acquisition, write_extension, write_header, write_string, write_tracer, write_truth

__all__ = ["MAX_MOLAR", "read_reconstruction", "write_reconstruction"]


def write_reconstruction(path, reco, overwrite=False):
    """Write a :class:`~mpisim.reconstruction.Reconstruction` as MDF: /reconstruction/data
    (Q, P, 1) float32 in ``reco.unit``; size, fieldOfView, fieldOfViewCenter, order, positions,
    isOverscanRegion; parameters in ``/_mpisim/recoParams`` (TOML) and ``/_mpisim/recoInfo``."""
    meas = reco.measurement
    img = np.asarray(reco.image)
    if not np.all(np.isfinite(img)) or np.abs(img).max(initial=0) > 1e30:
        raise MPISimError(f"{path}: not written: the reconstruction is not finite (or beyond float32); the "
                          f"inputs hold values far outside their physical range")
    with atomic_path(path, overwrite) as tmp:
        with h5py.File(tmp, "w") as h:
            sc = getattr(meas, "scanner", None)
            scanner_meta = ({"facility": sc.facility, "manufacturer": sc.manufacturer, "name": sc.name,
                             "operator": "mpisim", "topology": sc.topology} if sc is not None else
                            ((meas.provenance.scanner_info or {"topology": "FFP"}) if meas is not None else {}))
            write_header(h, name="mpisim reconstruction", description=f"reconstructed by mpisim {__version__}",
                         scanner_meta=scanner_meta,
                         is_simulation=bool(meas.provenance.is_simulation) if meas is not None else False)
            if meas is not None:
                if getattr(meas, "tracer", None) is not None:
                    write_tracer(h, meas.tracer, meas.tracer_concentration or 0.0)
                write_acquisition(h, meas, meas.num_frames, meas.num_averages)
            g = reco.grid
            if reco.contrasts:          # MDF's reconstruction channels: one per contrast
                if not np.all(np.isfinite(reco.joint)):
                    raise MPISimError(f"{path}: not written: a contrast's image is not finite")
                F, K = reco.joint.shape[0], len(reco.contrasts)
                h["reconstruction/data"] = np.ascontiguousarray(
                    reco.joint.reshape(F, K, g.size).transpose(0, 2, 1)).astype(np.float32)
                write_string(h, "_mpisim/contrasts", "\n".join(reco.contrasts))
            else:
                h["reconstruction/data"] = reco.image.astype(np.float32)[:, :, None]
            h["reconstruction/size"] = np.array(g.shape, np.int64)
            h["reconstruction/fieldOfView"] = np.array(g.fov)
            h["reconstruction/fieldOfViewCenter"] = np.array(g.center)
            write_string(h, "reconstruction/order", "xyz")
            h["reconstruction/positions"] = g.positions()
            h["reconstruction/isOverscanRegion"] = np.zeros(g.size, np.int8)
            info = {k: v for k, v in reco.info.items() if isinstance(v, (int, float, str, bool, list))}
            noise = reco.joint_noise if reco.contrasts else reco.noise     # contrast-major (…, K·N)
            if noise is not None:
                h.create_dataset("_mpisim/noiseRealisations", data=np.asarray(noise, np.float32),
                                 compression="gzip", shuffle=True)
            write_extension(h, extra={"recoParams": tomlio.dumps(reco.params.to_dict()),
                                      "recoInfo": tomlio.dumps(info), "unit": reco.unit})
            if reco.truth is not None:
                write_truth(h, reco.truth.to_record())
    return path


MAX_MOLAR = 1e3
"""Largest iron concentration (mol/L) a reconstruction in mol/L may hold: pure iron is 140 mol/L."""


@guarded
def read_reconstruction(path):
    """Read an MDF reconstruction → :class:`~mpisim.reconstruction.Reconstruction` (frame 0..Q)."""
    with open_h5(path) as h:
        r = Reader(h, path)
        if "reconstruction/data" not in h:
            raise MPISimError(f"{path}: no /reconstruction/data (not a reconstruction file)")
        check_metadata(r)
        data = np.asarray(r.array("reconstruction/data"), float)
        if data.ndim == 2:
            data = data[:, :, None]
        if data.ndim != 3:
            raise MPISimError(f"{path}: /reconstruction/data must be (frames, voxels, channels), got {data.shape}")
        if not np.all(np.isfinite(data)):
            raise MPISimError(f"{path}: /reconstruction/data contains NaN or Inf")
        size = r.array("reconstruction/size")
        fov = r.array("reconstruction/fieldOfView")
        center = r.array("reconstruction/fieldOfViewCenter", required=False)
        try:
            grid = Grid(tuple(int(s) for s in np.ravel(size)), tuple(float(x) for x in np.ravel(fov)),
                        tuple(float(x) for x in np.ravel(center)) if center is not None else (0.0, 0.0, 0.0))
        except MPISimError as e:
            raise MPISimError(f"{path}: /reconstruction/size or fieldOfView: {e}") from None
        if grid.size != data.shape[1]:
            raise MPISimError(f"{path}: /reconstruction/size {grid.shape} does not match {data.shape[1]} voxels")
        unit = r.string("_mpisim/unit", default="")
        if unit == "mol/L" and np.abs(data).max(initial=0) > MAX_MOLAR:
            raise MPISimError(f"{path}: /reconstruction/data holds {np.abs(data).max():.3g} mol/L, beyond any iron "
                              f"concentration ({MAX_MOLAR:g} mol/L; pure iron is 140 mol/L)")
        params = RecoParams()
        info = {"source": str(path)}
        if "_mpisim/recoParams" in h:
            try:
                params = RecoParams.from_dict(tomlio.loads(r.string("_mpisim/recoParams")))
            except (MPISimError, TypeError):
                pass
        if "_mpisim/recoInfo" in h:
            try:
                info = {**tomlio.loads(r.string("_mpisim/recoInfo")), **info}
            except MPISimError:
                pass
        names = r.string("_mpisim/contrasts").split("\n") if "_mpisim/contrasts" in h else []
        K = data.shape[2] if len(names) == data.shape[2] else 1      # another tool's channels: the first, as before
        data = data[:, :, :K]
        noise = None
        if "_mpisim/noiseRealisations" in h:
            noise = np.asarray(r.array("_mpisim/noiseRealisations", kinds="f"), float)
            n = K * data.shape[1]
            if noise.ndim not in (2, 3) or noise.shape[-1] != n or not np.all(np.isfinite(noise)):
                raise MPISimError(f"{path}: /_mpisim/noiseRealisations must be (R, {n}) or "
                                  f"(F, R, {n}) finite values, got {noise.shape}")
        truth = Truth.from_record(read_truth(r)) if "_mpisim/phantom" in h else None
        if K > 1:
            joint = data.transpose(0, 2, 1).reshape(data.shape[0], -1)
            return Reconstruction.of_contrasts(joint, grid, params, names, unit, info, noise, truth=truth)
        return Reconstruction(data[:, :, 0], grid, params, unit, info, noise, truth=truth)
