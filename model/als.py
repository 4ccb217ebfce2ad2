"""iALS (Hu, Koren & Volinsky 2008): weighted matrix factorisation of implicit feedback, through the
`implicit` package's native conjugate-gradient ALS.

Every (user, item) cell is a target: 1 for observed pairs with confidence alpha * value (implicit 0.7 takes
the matrix value times alpha as the confidence itself: value 1 gives confidence alpha), 0 with confidence 1
for all others; L2 penalty `regularization` on both factor matrices. The value is 1, or `recent_weight` for
each user's newest positives under recency weighting (`weighted_csr`).
"""

from __future__ import annotations

import logging
from typing import Self

from implicit.cpu.als import AlternatingLeastSquares

from model.data.interactions import Interactions
from model.data.sampling import weighted_csr
from model.data.split import HeldOut
from model.factorization import FactorRecommender

logger = logging.getLogger(__name__)


class IALS(FactorRecommender):
    """iALS.

    Args:
        factors: latent dimension (chosen on ML-1M validation).
        regularization: L2 penalty (chosen on ML-1M validation).
        alpha: confidence weight of observed pairs (chosen on ML-1M validation).
        iterations: ALS sweeps.
        seed: seed of the initial factors.
        num_threads: native threads (0 = all cores).
        recent_fraction: share of each user's newest training positives whose matrix value is
            `recent_weight` (0 = no recency weighting; see `model.data.sampling.recent_mask`).
        recent_weight: matrix value of those positives, so their confidence is alpha * recent_weight (every
            other positive has value 1; 1 = no weighting).
    """

    def __init__(
        self,
        factors: int = 128,
        regularization: float = 60.0,
        alpha: float = 2.0,
        iterations: int = 15,
        seed: int = 0,
        num_threads: int = 0,
        recent_fraction: float = 0.1,
        recent_weight: float = 8.0,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.seed = seed
        self.num_threads = num_threads
        self.recent_fraction = recent_fraction
        self.recent_weight = recent_weight

    def fit(self, train: Interactions, validation: HeldOut | None = None) -> Self:
        self._fit_implicit(
            AlternatingLeastSquares,
            weighted_csr(train, self.recent_fraction, self.recent_weight),
            factors=self.factors,
            regularization=self.regularization,
            alpha=self.alpha,
            iterations=self.iterations,
            random_state=self.seed,
            num_threads=self.num_threads,
        )
        logger.info(
            "iALS fitted: factors=%d, reg=%g, alpha=%g, recent %g x%g",
            self.factors,
            self.regularization,
            self.alpha,
            self.recent_fraction,
            self.recent_weight,
        )
        return self
