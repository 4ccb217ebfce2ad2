"""`Recommender`: the contract every model implements, so one pipeline, one evaluator, one batch scorer and
one report serve them all (the baselines and the NCF engines alike).

Every model is fitted (`fit`), retrained on more data with the same hyperparameters (`refit`), scored
(`score`, `score_users`, `recommend`), saved and loaded (`save`, `load_model`) and described (`report`)
the same way; the batch job never asks which model it holds. Hyperparameters are the constructor's
arguments (scikit-learn's convention): `hyperparameters()` reads them back and `clone()` builds an unfitted
copy.
"""

from __future__ import annotations

import importlib
import inspect
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp

from model.data.interactions import Interactions
from model.data.split import HeldOut
from model.topn import select_and_rank

MODEL_FILE = "model.json"
STATE_FILE = "state.npz"
ID_MAPS_FILE = "id_maps.npz"


class Recommender(ABC):
    """Scores (user, item) pairs; higher means more likely to be interacted with.

    Subclasses store hyperparameters in `__init__` only (no data, no training there), each under its
    argument's name; `fit` learns from training interactions and returns self. Fitted state lives in
    attributes ending in `_` (NumPy arrays or SciPy CSR matrices, which `save` writes).
    """

    n_users: int = 0
    n_items: int = 0
    engine: ClassVar[str | None] = None  # the NCF engines' name; None for models with a single implementation

    @abstractmethod
    def fit(self, train: Interactions, validation: HeldOut | None = None) -> Self:
        """Learn from `train`. `validation` may be used for early stopping / model selection only."""

    @abstractmethod
    def score(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """Scores of pairs: user_idx, item_idx (n,) int -> (n,) float32."""

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        """Scores of every item for each user: (n,) int -> (n, n_items) float32.

        The default scores the full grid through `score`; models override it with something faster.
        """
        user_idx = np.asarray(user_idx, dtype=np.int32)
        users = np.repeat(user_idx, self.n_items)
        items = np.tile(np.arange(self.n_items, dtype=np.int32), user_idx.shape[0])
        return self.score(users, items).reshape(user_idx.shape[0], self.n_items)

    def recommend(
        self, user_idx: np.ndarray, n: int, exclude: sp.csr_matrix | None = None, workers: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top-n items of a batch of users, excluded items masked before the selection.

        Args:
            user_idx: (c,) int users of one chunk.
            n: items per user.
            exclude: (c, n_items) CSR of items never to recommend to the same users (e.g. those rated).
            workers: threads of the selection (default: the available cores).

        Returns:
            items (c, k) int64, scores (c, k) float32 best first (ties: lower item index), and (c,) int64
            how many of each row's k are real recommendations (rows with fewer than k unexcluded items
            are padded with excluded ones, whose score is -inf). NaN scores rank as -inf.
        """
        items, best, available, _ = self.recommend_and_rank(user_idx, n, exclude, None, workers)
        return items, best, available

    def recommend_and_rank(
        self,
        user_idx: np.ndarray,
        n: int,
        exclude: sp.csr_matrix | None,
        held_items: np.ndarray | None,
        workers: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """`recommend`, plus the full-ranking rank of each user's held-out item from the same scores.

        Args:
            held_items: (c,) int item index of each user's held-out positive, -1 for none, or None. Each
                held item must be among the user's `exclude` items (it is rated, so never recommended).

        Returns:
            `recommend`'s three arrays and, when `held_items` is given, (c,) int64 0-based ranks of the
            held items among every item not excluded (as `model.metrics.full_rank` with `exclude` as the
            known items: ties and NaN count against the model), -1 where a user has no held item.
        """
        scores = np.array(self.score_users(user_idx), dtype=np.float32, copy=True)
        return select_and_rank(scores, n, exclude, held_items, workers)

    def warm_start(
        self,
        previous: Recommender,
        old_ids: tuple[np.ndarray, np.ndarray],
        new_ids: tuple[np.ndarray, np.ndarray],
    ) -> str | None:
        """Make the next `fit` start from `previous`, a fitted model (e.g. the last published one), with
        users and movies matched by raw id: old_ids and new_ids are (user_ids, item_ids) by dense index of
        `previous` and of the data `fit` will get. Returns None when it will, else why not (the default:
        this model always starts fresh)."""
        return f"{type(self).__name__} always starts fresh"

    def item_embeddings(self) -> np.ndarray | None:
        """(n_items, d) float32 item vectors whose cosine says how alike two items are, for models that
        learn such vectors (NCF: the GMF item embeddings); None for the others (the default)."""
        return None

    # --- hyperparameters, refit -------------------------------------------------------------------
    def hyperparameters(self) -> dict[str, Any]:
        """The constructor's arguments as set on this model (JSON-able)."""
        return {param.name: getattr(self, param.name) for param in constructor_parameters(type(self))}

    def clone(self) -> Self:
        """An unfitted model with the same hyperparameters."""
        return type(self)(**self.hyperparameters())

    def refit(self, train: Interactions) -> Recommender:
        """A fresh model with the same hyperparameters fitted on `train` without validation (after model
        selection: on train + validation items before reporting test figures, or on every interaction in
        the batch job). Models that select something on validation (NCF: the number of epochs) reuse the
        selection."""
        return self.clone().fit(train)

    # --- report -----------------------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        """What was trained and how: class, engine, hyperparameters and, for iterative models, the
        per-epoch history and the selected epoch (JSON-able)."""
        return {
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "engine": self.engine,
            "hyperparameters": self.hyperparameters(),
            "history": getattr(self, "history_", []),
            "best_epoch": getattr(self, "best_epoch_", None),
        }

    # --- persistence ------------------------------------------------------------------------------
    def save(
        self, path: str | Path, user_ids: np.ndarray | None = None, item_ids: np.ndarray | None = None
    ) -> Path:
        """Write `model.json` (class, hyperparameters, sizes), `state.npz` (fitted arrays) and, when
        given, `id_maps.npz` (raw ids by dense index). No pickle: arrays and JSON only."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        sparse: list[str] = []
        for name, value in vars(self).items():
            if not name.endswith("_") or name.startswith("_"):
                continue
            if isinstance(value, np.ndarray):
                arrays[name] = value
            elif sp.issparse(value):
                csr = sp.csr_matrix(value)
                sparse.append(name)
                arrays.update({f"{name}data": csr.data, f"{name}indices": csr.indices})
                arrays.update({f"{name}indptr": csr.indptr, f"{name}shape": np.asarray(csr.shape)})
        meta = {
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "hyperparameters": self.hyperparameters(),
            "n_users": self.n_users,
            "n_items": self.n_items,
            "sparse": sparse,
        }
        (path / MODEL_FILE).write_text(json.dumps(meta, indent=2))
        np.savez(path / STATE_FILE, **arrays)
        save_id_maps(path, user_ids, item_ids)
        return path

    @classmethod
    def _load(cls, path: Path, meta: dict[str, Any]) -> Recommender:
        model = cls(**meta["hyperparameters"])
        model.n_users, model.n_items = meta["n_users"], meta["n_items"]
        with np.load(path / STATE_FILE, allow_pickle=False) as npz:
            state = {key: npz[key] for key in npz.files}
        for name in meta["sparse"]:
            parts = [state.pop(f"{name}{part}") for part in ("data", "indices", "indptr", "shape")]
            setattr(model, name, sp.csr_matrix(tuple(parts[:3]), shape=tuple(parts[3])))
        for name, value in state.items():
            setattr(model, name, value)
        return model


def constructor_parameters(cls: type) -> list[inspect.Parameter]:
    """The named arguments of `cls.__init__` (self, *args and **kwargs left out), annotations evaluated."""
    params = list(inspect.signature(cls.__init__, eval_str=True).parameters.values())[1:]
    return [p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def load_model(path: str | Path, **options: Any) -> Recommender:
    """Load any model written by `save` (NCF models take `engine=` to load into the other engine)."""
    path = Path(path)
    meta = json.loads((path / MODEL_FILE).read_text())
    module, _, name = meta["class"].rpartition(".")
    if not module.startswith("model."):
        raise ValueError(f"{path / MODEL_FILE}: class {meta['class']!r} is not one of this project's models")
    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, Recommender)):
        raise ValueError(f"{path / MODEL_FILE}: {meta['class']!r} is not a Recommender")
    return cls._load(path, meta, **options)


def save_id_maps(path: Path, user_ids: np.ndarray | None, item_ids: np.ndarray | None) -> None:
    """Write `id_maps.npz` (raw user and movie ids by dense index) when both are given."""
    if user_ids is not None and item_ids is not None:
        np.savez(path / ID_MAPS_FILE, user_ids=user_ids, item_ids=item_ids)


def load_id_maps(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(user_ids, item_ids) int64 saved beside a model."""
    with np.load(Path(path) / ID_MAPS_FILE, allow_pickle=False) as npz:
        return npz["user_ids"], npz["item_ids"]
