"""Typed metadata carried between modules: the ground truth of a phantom.

A reconstruction or a measurement says what it knows through these small frozen dataclasses instead of
string-keyed dicts, so no module reaches through another's internals.
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["Truth"]


@dataclass(frozen=True)
class Truth:
    """Ground truth of a simulated phantom, as simulated or as recorded in ``/_mpisim/phantom``.

    name; concentration : (nx, ny, nz) mol Fe/L on the phantom's own grid of ``size`` voxels over
    ``field_of_view`` (m) centred at ``center`` (m); iron_mass : kg (None when not recorded);
    chambers : the phantom's chambers, each a dict with ``label``, ``center`` (m), ``volume`` (m³)
    and ``concentration`` (mol/L) — what :class:`mpisim.quant.Chambers` ROIs are drawn from.
    """

    name: str = ""
    concentration: np.ndarray | None = None
    size: tuple = ()
    field_of_view: tuple = ()
    center: tuple = ()
    iron_mass: float | None = None
    chambers: tuple = ()

    @classmethod
    def of_phantom(cls, phantom):
        """The truth of a :class:`~mpisim.phantoms.Phantom` in memory."""
        g = phantom.grid
        return cls(phantom.name, phantom.concentration, tuple(g.shape), tuple(g.fov), tuple(g.center),
                   phantom.iron_mass, tuple(phantom.meta.get("chambers") or ()))

    @classmethod
    def from_record(cls, rec):
        """From the dict an MDF file's ``/_mpisim/phantom`` group reads as (see :func:`to_record`)."""
        if rec is None:
            return None
        return cls(rec.get("name", ""), rec.get("concentration"), tuple(np.ravel(rec.get("size", ()))),
                   tuple(np.ravel(rec.get("fieldOfView", ()))), tuple(np.ravel(rec.get("fieldOfViewCenter", ()))),
                   rec.get("ironMass"), tuple(rec.get("chambers") or ()))

    def to_record(self):
        """The dict the MDF writer stores in ``/_mpisim/phantom``."""
        out = {"name": self.name, "concentration": self.concentration, "size": np.array(self.size),
               "fieldOfView": np.array(self.field_of_view), "fieldOfViewCenter": np.array(self.center)}
        if self.iron_mass is not None:
            out["ironMass"] = self.iron_mass
        if self.chambers:
            out["chambers"] = list(self.chambers)
        return out
