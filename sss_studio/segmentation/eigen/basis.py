"""What every eigensolver returns, and the call signature they share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Protocol

import numpy as np
import scipy.sparse as sp

from ..cancel import CancelFn, ProgressFn


@dataclass
class EigenBasis:
    vectors: np.ndarray  # N×k, orthonormal columns
    values: np.ndarray   # k, ascending by magnitude
    # Largest ‖L·v − λ·v‖ / mean(diag L) that the last cold solve reached (fast solver):
    # a warm start after a weight change iterates only until it is back at that level.
    target_residual: Optional[float] = None
    info: dict[str, Any] = field(default_factory=dict)   # timings and convergence history


class Eigensolver(Protocol):
    def __call__(
        self,
        laplacian: sp.csr_matrix,
        params: Any,                          # the solver's own parameters dataclass
        *,
        seed: int = 0,                        # seeds the solver's random start
        warm_start: Optional[EigenBasis] = None,
        cancel: CancelFn = None,
        progress: ProgressFn = None,
        guide: Optional[np.ndarray] = None,   # the photo L was built from (H×W×3), if known
    ) -> EigenBasis: ...
