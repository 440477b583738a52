"""Eigensolvers for the smallest eigenvectors of the Laplacian, by mode name.

``reference``: ARPACK shift-invert (the paper's, slow). ``fast``: AMG-preconditioned
multilevel LOBPCG. Both take the Laplacian and their own parameters dataclass
(``params.EIGEN_PARAMS``) and return an :class:`EigenBasis`.
"""

from __future__ import annotations

from .basis import EigenBasis, Eigensolver
from .fast import fast_eigensolver
from .reference import reference_eigensolver

SOLVERS: dict[str, Eigensolver] = {"reference": reference_eigensolver, "fast": fast_eigensolver}


def get_solver(name: str) -> Eigensolver:
    try:
        return SOLVERS[name]
    except KeyError:
        raise ValueError(f"unknown solver mode {name!r}; choose one of {sorted(SOLVERS)}") from None


__all__ = ["SOLVERS", "EigenBasis", "Eigensolver", "get_solver", "fast_eigensolver", "reference_eigensolver"]
