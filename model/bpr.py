"""BPR-MF (Rendle et al. 2009): matrix factorisation trained by SGD on the pairwise BPR loss
(an observed item should score above a sampled unobserved one), through the `implicit` package.

`implicit` adds an item bias as an extra factor (user side fixed to 1), so the factor matrices have
`factors + 1` columns and the score stays a plain dot product. Its SGD runs hogwild over `num_threads`,
so results vary slightly between runs with more than one thread.
"""

from __future__ import annotations

import logging
from typing import Self

from implicit.cpu.bpr import BayesianPersonalizedRanking

from model.data.interactions import Interactions
from model.data.split import HeldOut
from model.factorization import FactorRecommender

logger = logging.getLogger(__name__)


class BPR(FactorRecommender):
    """BPR-MF.

    Args:
        factors: latent dimension.
        learning_rate: SGD step (chosen on ML-1M validation).
        regularization: L2 penalty (chosen on ML-1M validation).
        iterations: epochs over the training pairs.
        seed: seed of the initial factors and the negative samples.
        num_threads: SGD threads (1 = deterministic; 0 = all cores).
    """

    def __init__(
        self,
        factors: int = 64,
        learning_rate: float = 0.01,
        regularization: float = 0.01,
        iterations: int = 100,
        seed: int = 0,
        num_threads: int = 1,
    ) -> None:
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.seed = seed
        self.num_threads = num_threads

    def fit(self, train: Interactions, validation: HeldOut | None = None) -> Self:
        self._fit_implicit(
            BayesianPersonalizedRanking,
            train.to_csr(),
            factors=self.factors,
            learning_rate=self.learning_rate,
            regularization=self.regularization,
            iterations=self.iterations,
            random_state=self.seed,
            num_threads=self.num_threads,
        )
        logger.info(
            "BPR fitted: factors=%d, lr=%g, reg=%g", self.factors, self.learning_rate, self.regularization
        )
        return self
