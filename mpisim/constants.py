"""Physical constants and iron/magnetite bookkeeping (SI units).

Field strengths in mpisim are given in T/µ0 (the MPI and MDF convention): a value ``B`` in
T/µ0 is the field ``H = B / MU0`` in A/m.
"""

__all__ = ["MU0", "K_B", "MAGNETITE_DENSITY", "FE_MASS_FRACTION", "FE_MOLAR_MASS", "MAGNETITE_MS", "LITRE",
           "PICOGRAM", "mol_per_litre_to_kg_per_m3"]

MU0 = 1.25663706212e-6
"""Vacuum permeability µ0 in T·m/A."""

K_B = 1.380649e-23
"""Boltzmann constant in J/K."""

MAGNETITE_DENSITY = 5170.0
"""Density of magnetite in kg/m³ (5.17 g/cm³)."""

FE_MASS_FRACTION = 0.7236
"""Mass fraction of iron in magnetite (Fe3O4)."""

FE_MOLAR_MASS = 55.845e-3
"""Molar mass of iron in kg/mol."""

MAGNETITE_MS = 0.6
"""Default saturation magnetisation of magnetite in T/µ0 (477 kA/m)."""

LITRE = 1e-3
"""One litre in m³."""

PICOGRAM = 1e-15
"""One picogram in kg."""


def mol_per_litre_to_kg_per_m3(c):
    """Convert an iron concentration in mol Fe/L to an iron mass density in kg Fe/m³."""
    return c * FE_MOLAR_MASS / LITRE
