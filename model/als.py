"""iALS (Hu, Koren & Volinsky 2008): weighted matrix factorisation of implicit feedback, through the
`implicit` package's native conjugate-gradient ALS.

Every (user, item) cell is a target: 1 with confidence 1 + alpha for observed pairs, 0 with confidence 1
for all others; L2 penalty `regularization` on both factor matrices.
"""

from __future__ import annotations

import logging
from typing import Self

from implicit.cpu.als import AlternatingLeastSquares

from model.data.interactions import Interactions
from model.data.split import HeldOut
from model.factorization import FactorRecommender

logger = logging.getLogger(__name__)


class IALS(FactorRecommender):
    """iALS.

    Args:
        factors: latent dimension (chosen on the ML-1M validation item: 128).
        regularization: L2 penalty (chosen on validation: 30).
        alpha: confidence weight of observed pairs (chosen on validation: 4).
        iterations: ALS sweeps (15).
        seed: seed of the initial factors.
        num_threads: native threads (0 = all cores).
    """

    def __init__(
        self,
        factors: int = 128,
        regularization: float = 30.0,
        alpha: float = 4.0,
        iterations: int = 15,
        seed: int = 0,
        num_threads: int = 0,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.seed = seed
        self.num_threads = num_threads

    def fit(self, train: Interactions, validation: HeldOut | None = None) -> Self:
        self._fit_implicit(
            AlternatingLeastSquares,
            train,
            factors=self.factors,
            regularization=self.regularization,
            alpha=self.alpha,
            iterations=self.iterations,
            random_state=self.seed,
            num_threads=self.num_threads,
        )
        logger.info(
            "iALS fitted: factors=%d, reg=%g, alpha=%g", self.factors, self.regularization, self.alpha
        )
        return self
