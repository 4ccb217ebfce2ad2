"""Side features for NeuMF, screened on the VALIDATION item only: an A/B of the same plain Keras NeuMF.

The issue: movie genres and year (movies.dat) and user gender, age and occupation (users.dat) as extra
embedding inputs to the GMF and MLP towers, off by default until validation says otherwise. This script
trains one plain NeuMF twice per training seed, same seed, same initial weights of the shared layers, same
training examples in the same order: once with id embeddings only ("off"), once with the side features
added to them ("on"). It scores the validation item of the leaderboard's split (seed 0) under both
protocols (sampled: 1 + 99 candidates; full ranking) with `model.evaluation.Evaluator.evaluate_per_user`,
and compares the per-user figures (mean over the training seeds) with the paired tests of `model.paired`.
Only `split.train` and `split.validation` are used: no test item is ranked, there is no refit.

The network (not the project's NeuMF engine, no pretraining, so its figures are not the leaderboard's):
GMF (64 factors, elementwise product of user and item embeddings) + MLP (32-dim user and item embeddings
concatenated -> Dense 64 relu -> Dense 32 relu), concatenated -> Dense(1) logit; sigmoid cross-entropy;
embeddings N(0, 0.01); Adam with decoupled weight decay (lr 0.002, weight_decay 0.1); batches of 4096;
8 negatives per positive with recency weighting (`NegativeSampler(recent_fraction=0.1, recent_weight=6)`);
up to `--max-epochs` epochs, the epoch of best validation sampled HR@10 kept (stop after `--patience`
epochs without gain). With features on, a user's GMF and MLP representation is its id embedding plus the
embeddings of its gender, age bucket and occupation; a movie's is its id embedding plus the mean of its
genres' embeddings (zero without genres) plus the embedding of its 5-year bucket (one "unknown" bucket).
The feature lookups are integer tables per user_idx / item_idx gathered inside the model, so the
training inputs stay (user_idx, item_idx).

    python bench/side_features_validation.py --data-dir /work/shared/data/ml-1m --seeds 0 1

Writes bench/results/side_features_validation.json and .md (`--stem` to change the name), rewritten after
each training seed with the seeds finished so far. `--max-users N` (smoke tests) keeps only users below N
in training and validation.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from neumf_validation import flat_per_user, title  # bench/ on path

from model.data import DataLoader, leave_one_out
from model.data.interactions import Interactions
from model.data.sampling import NegativeSampler
from model.data.split import HeldOut, LeaveOneOutSplit
from model.evaluation import Evaluator
from model.paired import paired_test

logger = logging.getLogger("bench.side_features_validation")
RESULTS = Path(__file__).resolve().parent / "results"
ARMS = ("off", "on")
GMF_DIM, MLP_DIM, MLP_LAYERS = 64, 32, (64, 32)
YEAR_BIN = 5
SCORE_CHUNK = 1 << 18  # pairs per compiled scoring call


@dataclass(frozen=True)
class SideTables:
    """Integer feature codes per dense index, gathered inside the network.

    Attributes:
        gender, age, occupation: (n_users,) int32 codes (the last code of each = not in users.dat).
        year: (n_items,) int32 5-year bucket (the last code = year unknown).
        genres: (n_items, max_genres) int32 genre codes, padded with `n_genres`.
        sizes: number of codes of each feature (genres: without the padding code).
        labels: each feature's codes as text, for the report.
    """

    gender: np.ndarray
    age: np.ndarray
    occupation: np.ndarray
    year: np.ndarray
    genres: np.ndarray
    sizes: dict[str, int]
    labels: dict[str, list[str]]


def _codes(values: pd.Series, present: np.ndarray, n: int) -> tuple[np.ndarray, list[str]]:
    """Codes 0..k-1 of the distinct `values` at rows `present` of an (n,) table; k for the rest."""
    uniques = sorted(values.unique().tolist())
    codes = np.full(n, len(uniques), dtype=np.int32)
    codes[present] = np.searchsorted(np.asarray(uniques), values.to_numpy())
    return codes, [str(u) for u in uniques] + ["unknown"]


def side_tables(dataset, users_file: Path) -> SideTables:
    """The feature tables of `dataset`'s users (`users_file`, users.dat) and movies (`dataset.movies`)."""
    users = pd.read_csv(
        users_file,
        sep="::",
        engine="python",
        header=None,
        names=["user_id", "gender", "age", "occupation", "zip"],
        encoding="latin-1",
    )
    user_idx = dataset.to_user_idx(users["user_id"].to_numpy())
    users = users[user_idx >= 0]
    user_idx = user_idx[user_idx >= 0]
    missing = dataset.n_users - np.unique(user_idx).size
    if missing:
        logger.warning("%d users are not in %s: their user features are 'unknown'", missing, users_file)
    gender, gender_labels = _codes(users["gender"], user_idx, dataset.n_users)
    age, age_labels = _codes(users["age"], user_idx, dataset.n_users)
    occupation, occupation_labels = _codes(users["occupation"], user_idx, dataset.n_users)

    movies = dataset.movies
    item_idx = dataset.to_item_idx(movies["movie_id"].to_numpy())
    movies = movies[item_idx >= 0]
    item_idx = item_idx[item_idx >= 0]
    years = movies["year"]
    known_year = ~pd.isna(years).to_numpy()
    first = int(years[known_year].min()) // YEAR_BIN * YEAR_BIN
    bins = (years[known_year].to_numpy(dtype=np.int64) - first) // YEAR_BIN
    n_bins = int(bins.max()) + 1
    year = np.full(dataset.n_items, n_bins, dtype=np.int32)
    year[item_idx[known_year]] = bins
    year_labels = [f"{first + YEAR_BIN * b}-{first + YEAR_BIN * b + YEAR_BIN - 1}" for b in range(n_bins)]

    genre_names = sorted({g for gs in movies["genres"] for g in gs})
    code = {g: c for c, g in enumerate(genre_names)}
    width = max(1, max(len(gs) for gs in movies["genres"]))
    genres = np.full((dataset.n_items, width), len(genre_names), dtype=np.int32)
    for i, gs in zip(item_idx, movies["genres"], strict=True):
        genres[i, : len(gs)] = [code[g] for g in gs]
    return SideTables(
        gender=gender,
        age=age,
        occupation=occupation,
        year=year,
        genres=genres,
        sizes={
            "gender": len(gender_labels),
            "age": len(age_labels),
            "occupation": len(occupation_labels),
            "year": n_bins + 1,
            "genres": len(genre_names),
        },
        labels={
            "gender": gender_labels,
            "age": age_labels,
            "occupation": occupation_labels,
            "year": [*year_labels, "unknown"],
            "genres": genre_names,
        },
    )


def build_network(n_users: int, n_items: int, tables: SideTables | None, seed: int):
    """The plain NeuMF as a Keras model of (user_idx, item_idx) -> logit; side features when `tables`.

    Every layer's initializer has its own fixed seed (derived from `seed`), created in the same order in
    both arms, so the id embeddings and dense layers start from the same weights with and without features.
    """
    import keras
    from keras import layers, ops

    def normal(k: int):
        return keras.initializers.RandomNormal(stddev=0.01, seed=seed * 1000 + k)

    def glorot(k: int):
        return keras.initializers.GlorotUniform(seed=seed * 1000 + k)

    class NeuMF(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.user_gmf = layers.Embedding(n_users, GMF_DIM, embeddings_initializer=normal(1))
            self.item_gmf = layers.Embedding(n_items, GMF_DIM, embeddings_initializer=normal(2))
            self.user_mlp = layers.Embedding(n_users, MLP_DIM, embeddings_initializer=normal(3))
            self.item_mlp = layers.Embedding(n_items, MLP_DIM, embeddings_initializer=normal(4))
            self.hidden = [
                layers.Dense(units, activation="relu", kernel_initializer=glorot(10 + j))
                for j, units in enumerate(MLP_LAYERS)
            ]
            self.out = layers.Dense(1, kernel_initializer=glorot(20))
            self.features = tables is not None
            if self.features:
                self.user_codes = {
                    name: ops.convert_to_tensor(getattr(tables, name))
                    for name in ("gender", "age", "occupation")
                }
                self.year_codes = ops.convert_to_tensor(tables.year)
                self.genre_codes = ops.convert_to_tensor(tables.genres)
                self.genre_mask = ops.convert_to_tensor(
                    (tables.genres < tables.sizes["genres"]).astype("float32")
                )
                self.side = {}
                k = 100
                for tower, dim in (("gmf", GMF_DIM), ("mlp", MLP_DIM)):
                    for name in ("gender", "age", "occupation", "year"):
                        self.side[f"{tower}_{name}"] = layers.Embedding(
                            tables.sizes[name], dim, embeddings_initializer=normal(k)
                        )
                        k += 1
                    # One padding row after the genres; masked out of the mean.
                    self.side[f"{tower}_genres"] = layers.Embedding(
                        tables.sizes["genres"] + 1, dim, embeddings_initializer=normal(k)
                    )
                    k += 1

        def _user(self, tower: str, users):
            rep = (self.user_gmf if tower == "gmf" else self.user_mlp)(users)
            if self.features:
                for name, codes in self.user_codes.items():
                    rep = rep + self.side[f"{tower}_{name}"](ops.take(codes, users, axis=0))
            return rep

        def _item(self, tower: str, items):
            rep = (self.item_gmf if tower == "gmf" else self.item_mlp)(items)
            if self.features:
                rep = rep + self.side[f"{tower}_year"](ops.take(self.year_codes, items, axis=0))
                genres = self.side[f"{tower}_genres"](ops.take(self.genre_codes, items, axis=0))  # (b, G, d)
                mask = ops.take(self.genre_mask, items, axis=0)  # (b, G)
                total = ops.sum(genres * ops.expand_dims(mask, -1), axis=1)
                rep = rep + total / ops.maximum(ops.sum(mask, axis=1, keepdims=True), 1.0)
            return rep

        def call(self, inputs):
            users, items = inputs
            gmf = self._user("gmf", users) * self._item("gmf", items)
            mlp = ops.concatenate([self._user("mlp", users), self._item("mlp", items)], axis=-1)
            for layer in self.hidden:
                mlp = layer(mlp)
            return ops.squeeze(self.out(ops.concatenate([gmf, mlp], axis=-1)), axis=-1)

    return NeuMF()


class KerasScorer:
    """The Evaluator's view of the network: `score` of pairs and `score_users` (all items of a chunk of
    users), logits in compiled calls of at most `SCORE_CHUNK` pairs. The Evaluator masks known items."""

    def __init__(self, network, n_items: int) -> None:
        import tensorflow as tf

        self.network = network
        self.n_items = n_items
        self._logits = tf.function(
            lambda u, i: network((u, i), training=False),
            input_signature=[tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.int32)],
            jit_compile=True,
        )

    def score(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        user_idx = np.asarray(user_idx, dtype=np.int32)
        item_idx = np.asarray(item_idx, dtype=np.int32)
        out = np.empty(user_idx.shape[0], dtype=np.float32)
        for start in range(0, user_idx.shape[0], SCORE_CHUNK):
            stop = start + SCORE_CHUNK
            out[start:stop] = self._logits(user_idx[start:stop], item_idx[start:stop]).numpy()
        return out

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        """(c,) int -> (c, n_items) float32 logits of every item: the chunk's pairs, scored in pair chunks."""
        user_idx = np.asarray(user_idx, dtype=np.int32)
        users = np.repeat(user_idx, self.n_items)
        items = np.tile(np.arange(self.n_items, dtype=np.int32), user_idx.shape[0])
        return self.score(users, items).reshape(user_idx.shape[0], self.n_items)


def fit_arm(
    split: LeaveOneOutSplit, tables: SideTables | None, seed: int, args: argparse.Namespace
) -> tuple[KerasScorer, dict]:
    """Trains one arm; keeps the weights of the epoch of best validation sampled HR@10."""
    import keras

    keras.utils.set_random_seed(seed)
    train = split.train
    network = build_network(train.n_users, train.n_items, tables, seed)
    network.compile(
        optimizer=keras.optimizers.Adam(learning_rate=args.learning_rate, weight_decay=args.weight_decay),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        steps_per_execution=args.steps_per_execution,
    )
    scorer = KerasScorer(network, train.n_items)
    sampler = NegativeSampler(
        train, num_negatives=args.num_negatives, seed=seed, recent_fraction=0.1, recent_weight=6
    )
    evaluator = Evaluator(split, k=10, protocols=("sampled",))
    best_hr, best_epoch, best_weights, history = -1.0, -1, None, []
    start = time.perf_counter()
    for epoch in range(args.max_epochs):
        users, items, labels = sampler.epoch(epoch)
        perm = np.random.default_rng([seed, epoch, 1]).permutation(users.shape[0])
        t0 = time.perf_counter()
        fitted = network.fit(
            (users[perm], items[perm]),
            labels[perm],
            batch_size=args.batch_size,
            epochs=1,
            shuffle=False,
            verbose=0,
        )
        train_s = time.perf_counter() - t0
        hr = evaluator.evaluate(scorer, "validation")["sampled"]["hr@10"]
        loss = float(fitted.history["loss"][-1])
        history.append(
            {"epoch": epoch, "loss": round(loss, 5), "val_sampled_hr@10": hr, "seconds": round(train_s, 1)}
        )
        logger.info(
            "%s seed %d epoch %d: loss %.4f, validation sampled HR@10 %.4f (%.0fs training, %d examples)",
            "on" if tables else "off",
            seed,
            epoch,
            loss,
            hr,
            train_s,
            users.shape[0],
        )
        if hr > best_hr:
            best_hr, best_epoch, best_weights = hr, epoch, network.get_weights()
        elif epoch - best_epoch >= args.patience:
            break
    network.set_weights(best_weights)
    fit_s = time.perf_counter() - start
    return scorer, {
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "fit_seconds": round(fit_s, 1),
        "history": history,
        "parameters": int(sum(np.prod(w.shape) for w in network.trainable_weights)),
    }


def restrict(split: LeaveOneOutSplit, max_users: int) -> LeaveOneOutSplit:
    """The split with training and validation cut to users below `max_users` (smoke tests)."""
    train, val = split.train, split.validation
    keep = train.user_idx < max_users
    vkeep = val.user_idx < max_users
    return dataclasses.replace(
        split,
        train=Interactions(train.user_idx[keep], train.item_idx[keep], train.n_users, train.n_items),
        validation=HeldOut(val.user_idx[vkeep], val.item_idx[vkeep], val.candidates[vkeep]),
    )


def compare(arrays: dict[str, list[dict[str, np.ndarray]]]) -> tuple[dict, dict]:
    """Per-arm means of the per-user figures averaged over seeds, and the paired tests of on minus off."""
    means = {arm: {k: np.mean([a[k] for a in arrays[arm]], axis=0) for k in arrays[arm][0]} for arm in ARMS}
    figures = {arm: {k: float(v.mean()) for k, v in means[arm].items()} for arm in ARMS}
    tests = {k: paired_test(means["on"][k], means["off"][k]).to_dict() for k in means["on"]}
    return figures, tests


def run(args: argparse.Namespace, write) -> dict:
    dataset = DataLoader(args.data_dir).load()
    split = leave_one_out(dataset, seed=args.split_seed)
    if args.max_users:
        split = restrict(split, args.max_users)
    tables = side_tables(dataset, Path(args.users_file or Path(args.data_dir) / "users.dat"))
    logger.info("feature sizes: %s", tables.sizes)
    evaluator = Evaluator(split, k=10, protocols=("sampled", "full"))
    runs: list[dict] = []
    arrays: dict[str, list[dict[str, np.ndarray]]] = {arm: [] for arm in ARMS}
    result: dict = {}
    for seed in args.seeds:
        run_ = {"seed": seed}
        for arm in ARMS:
            scorer, info = fit_arm(split, tables if arm == "on" else None, seed, args)
            figures, per_user = evaluator.evaluate_per_user(scorer, "validation")
            logger.info("%s seed %d: %s", arm, seed, {k: v for k, v in figures.items()})
            run_[arm] = {**info, "validation": figures}
            arrays[arm].append(flat_per_user(per_user))
            del scorer
        run_["tests"] = {
            k: paired_test(arrays["on"][-1][k], arrays["off"][-1][k]).to_dict() for k in arrays["on"][-1]
        }
        runs.append(run_)
        figures, tests = compare(arrays)
        result = {
            "seeds_requested": args.seeds,
            "seeds": [r["seed"] for r in runs],
            "validation_users": len(split.validation),
            "validation_mean": figures,
            "on_minus_off": tests,
            "runs": runs,
            "features": {"sizes": tables.sizes, "labels": tables.labels},
            "settings": {
                "gmf_dim": GMF_DIM,
                "mlp_dim": MLP_DIM,
                "mlp_layers": list(MLP_LAYERS),
                "learning_rate": args.learning_rate,
                "weight_decay": args.weight_decay,
                "batch_size": args.batch_size,
                "num_negatives": args.num_negatives,
                "recent_fraction": 0.1,
                "recent_weight": 6,
                "max_epochs": args.max_epochs,
                "patience": args.patience,
                "split_seed": args.split_seed,
                "max_users": args.max_users,
                "pretraining": False,
            },
            "command": "python bench/side_features_validation.py " + " ".join(sys.argv[1:]),
            "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, shared with other jobs",
            "load_average": [round(x, 2) for x in os.getloadavg()],
        }
        write(result)
    return result


def to_markdown(r: dict) -> str:
    done = r["seeds"]
    partial = done != r["seeds_requested"]
    lines = [
        "# Side features for NeuMF, validation item only (A/B)",
        "",
        "Written by `bench/side_features_validation.py`. ML-1M, the leaderboard's split (seed "
        f"{r['settings']['split_seed']}); a plain Keras NeuMF (GMF 64 + MLP 32 -> 64 -> 32, AdamW lr "
        f"{r['settings']['learning_rate']}, weight decay {r['settings']['weight_decay']}, batch "
        f"{r['settings']['batch_size']}, {r['settings']['num_negatives']} negatives with recency weighting, "
        f"up to {r['settings']['max_epochs']} epochs, best validation sampled HR@10 kept) trained twice per "
        "training seed with the same seed, initial weights and examples: without side features (off) and "
        "with user gender, age, occupation and movie genres (mean), 5-year bucket added to the id "
        "embeddings of both towers (on). Scored on the **validation item only** (no test item ranked, no "
        "refit). **No pretraining**: these figures are not the leaderboard's NeuMF.",
        "",
        f"Command: `{r['command']}`; generated {r['generated']} ({r['machine']}; load average "
        f"{r['load_average'][0]}). Training seeds {done}"
        + (f" of the {r['seeds_requested']} requested (the run stopped before the rest)" if partial else "")
        + f"; {r['validation_users']} validation users.",
        "",
        "## Per arm and seed",
        "",
        "| seed | arm | best epoch | epochs run | fit s | sampled HR@10 | sampled NDCG@10 | full HR@10 | "
        "full NDCG@10 | full Recall@20 | full MRR |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run_ in r["runs"]:
        for arm in ARMS:
            a = run_[arm]
            v = a["validation"]
            lines.append(
                f"| {run_['seed']} | {arm} | {a['best_epoch'] + 1} | {a['epochs_run']} | "
                f"{a['fit_seconds']:.0f} | "
                f"{v['sampled']['hr@10']:.4f} | {v['sampled']['ndcg@10']:.4f} | {v['full']['hr@10']:.4f} | "
                f"{v['full']['ndcg@10']:.4f} | {v['full']['recall@20']:.4f} | {v['full']['mrr']:.4f} |"
            )
    lines += [
        "",
        "Best epoch counts from 1; fit seconds include the per-epoch validation (sampled) that picks it.",
        "",
        f"## On minus off (per-user figures averaged over training seeds {done})",
        "",
        "Paired over the validation users: mean difference, its 95% confidence interval, p-values of the "
        "paired t-test / Wilcoxon signed-rank test. Real: p < 0.05 on both.",
        "",
        "| figure (validation) | off | on | on - off [95% CI] | p (t / Wilcoxon) | verdict |",
        "|---|---:|---:|---|---|---|",
    ]
    real, noise = [], []
    for key, t in r["on_minus_off"].items():
        is_real = t["t_pvalue"] < 0.05 and t["wilcoxon_pvalue"] < 0.05
        (real if is_real else noise).append(key)
        lines.append(
            f"| {title(key)} | {r['validation_mean']['off'][key]:.4f} | "
            f"{r['validation_mean']['on'][key]:.4f} | "
            f"{t['mean_difference']:+.4f} [{t['ci_low']:+.4f}, {t['ci_high']:+.4f}] | "
            f"{t['t_pvalue']:.2g} / {t['wilcoxon_pvalue']:.2g} | {'real' if is_real else 'noise'} |"
        )
    if len(r["runs"]) > 1:
        lines += ["", "Per training seed, on minus off (p t / Wilcoxon):", ""]
        for run_ in r["runs"]:
            cells = [
                f"{title(k)} {t['mean_difference']:+.4f} ({t['t_pvalue']:.2g} / {t['wilcoxon_pvalue']:.2g})"
                for k, t in run_["tests"].items()
            ]
            lines.append(f"- seed {run_['seed']}: " + "; ".join(cells))

    def names(keys: list[str]) -> str:
        return ", ".join(
            f"{title(k)} ({'+' if r['on_minus_off'][k]['mean_difference'] >= 0 else '-'})" for k in keys
        )

    lines += [
        "",
        "## Verdict",
        "",
        f"Real differences (p < 0.05 on both tests; sign of on - off): {names(real) or 'none'}. "
        f"Noise: {names(noise) or 'none'}.",
        "",
        "Sampled HR@10 on validation is also what picks each arm's epoch (the best of up to "
        f"{r['settings']['max_epochs']}), so it is the figure most favoured by that selection, and more so "
        "for the arm that runs more epochs; the other five figures are not selected on. Fit seconds are wall "
        "clock on a machine shared with other jobs (per-epoch seconds in the JSON's history).",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default=os.environ.get("NCF_DATA_DIR"), help="default: $NCF_DATA_DIR")
    parser.add_argument("--users-file", help="users.dat (default: DATA_DIR/users.dat)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds")
    parser.add_argument("--split-seed", type=int, default=0, help="the leaderboard's split")
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument("--patience", type=int, default=2, help="epochs without gain before stopping")
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--learning-rate", type=float, default=0.002)
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--num-negatives", type=int, default=8)
    parser.add_argument("--steps-per-execution", type=int, default=32, help="Keras training steps per call")
    parser.add_argument("--max-users", type=int, default=0, help="smoke tests: only users below this index")
    parser.add_argument("--stem", default="side_features_validation", help="result file names")
    parser.add_argument("--out-dir", type=Path, default=RESULTS, help="default: bench/results")
    parser.add_argument("--render-only", action="store_true", help="rewrite the .md from the .json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    json_path, md_path = args.out_dir / f"{args.stem}.json", args.out_dir / f"{args.stem}.md"
    if args.render_only:
        md_path.write_text(to_markdown(json.loads(json_path.read_text())))
        return 0
    if not args.data_dir:
        parser.error("pass --data-dir or set NCF_DATA_DIR")

    def write(result: dict) -> None:
        json_path.write_text(json.dumps(result, indent=2) + "\n")
        md_path.write_text(to_markdown(result))
        logger.info("wrote %s and %s", json_path, md_path)

    run(args, write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
