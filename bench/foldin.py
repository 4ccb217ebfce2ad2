"""New users without retraining, measured offline: the lookup service's fold-in
(`lookup_service.rules.fold_in`, the function behind POST /v1/recommendations) on MovieLens 1M
leave-one-out users.

Each user becomes a "new user" whose liked movies are their history before the held-out item (all of it, or
only the newest k); every other movie they are known to have rated is sent as `exclude`, as a client
would. The held-out item is a hit when it is in the 10 movies returned (full ranking over the catalogue:
HR@10, NDCG@10). Similar-movie lists are built as the job builds them (`batch.similar.cosine_top_k`) from
the interactions before the held-out item: train for validation, train + validation for test.

Variants (similarity source, K neighbours per movie, liked = all / newest k) are chosen on the validation
item; test is reported for every variant. Sources: `cooccurrence` (cosine of the movies' interaction
columns) and, with `--neumf-model DIR`, `gmf_embedding` (cosine of the GMF item embeddings of a NeuMF with
the default settings fitted on the training part and saved by `Recommender.save`; fitted and saved to DIR
first when DIR holds no model). The embeddings are those of the model fitted on train for validation and
test alike (not refit with the validation items, while the co-occurrence lists are), which if anything
should understate the embeddings' test figures. Comparison rows: popular movies (the same function with
nothing liked: the service's fallback), the same NeuMF scoring the user's own full list, and the
leaderboard's NeuMF figure (refit on train + validation).

    NCF_DATA_DIR=D python bench/foldin.py [--neumf-model DIR] [--users N] [--ks 10,20] [--lasts 5,all]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from batch.similar import cosine_top_k, item_vectors
from lookup_service.rules import NeighbourLists, fold_in
from model.data import DataLoader, leave_one_out
from model.data.interactions import Interactions

logger = logging.getLogger(__name__)
RESULTS = Path(__file__).parent / "results"
K_AT = 10
POPULAR_DEPTH = 200  # the job's default `candidates`: the depth of popular.parquet the service fills from


def neighbour_lists(vectors: sp.csr_matrix | np.ndarray, k: int) -> NeighbourLists:
    """The job's similar-movie lists over item indices (positions = item_idx)."""
    n_items = vectors.shape[0]
    counts = np.zeros(n_items, dtype=np.int64)
    parts_pos, parts_scores = [], []
    for rows, items, scores in cosine_top_k(vectors, k, 512):
        keep = np.isfinite(scores)
        counts[rows] = keep.sum(axis=1)
        parts_pos.append(items[keep].astype(np.int32))
        parts_scores.append(scores[keep].astype(np.float64))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return NeighbourLists(offsets, np.concatenate(parts_pos), np.concatenate(parts_scores))


def histories(train: Interactions, extra: tuple[np.ndarray, np.ndarray] | None) -> list[np.ndarray]:
    """Each user's items in time order (train rows are sorted by user, then time), `extra` (user, item)
    appended as the newest."""
    users, items = train.user_idx, train.item_idx
    if extra is not None:
        order = np.argsort(np.concatenate([users, extra[0]]), kind="stable")
        users = np.concatenate([users, extra[0]])[order]
        items = np.concatenate([items, extra[1]])[order]
    bounds = np.searchsorted(users, np.arange(train.n_users + 1))
    return [items[bounds[u] : bounds[u + 1]] for u in range(train.n_users)]


def evaluate(
    lists: NeighbourLists,
    popular: np.ndarray,
    popular_rank: np.ndarray,
    users: np.ndarray,
    targets: np.ndarray,
    history: list[np.ndarray],
    known: sp.csr_matrix,
    last: int | None,
) -> dict[str, float]:
    """HR@10 / NDCG@10 of `fold_in` for each user (liked: history, or its newest `last`; exclude: every
    other known item but the target)."""
    hits = np.zeros(len(users))
    gains = np.zeros(len(users))
    started = time.perf_counter()
    for row, (user, target) in enumerate(zip(users.tolist(), targets.tolist(), strict=True)):
        liked = history[user] if last is None else history[user][-last:]
        if last == 0:
            liked = liked[:0]
        rated = known.indices[known.indptr[user] : known.indptr[user + 1]]
        blocked = rated[rated != target]
        top, _, _ = fold_in(lists, popular, popular_rank, liked, K_AT, lambda c, b=blocked: ~np.isin(c, b))
        where = np.flatnonzero(top == target)
        if len(where):
            hits[row] = 1.0
            gains[row] = 1.0 / np.log2(where[0] + 2.0)
    return {
        "hr@10": float(hits.mean()),
        "ndcg@10": float(gains.mean()),
        "seconds": round(time.perf_counter() - started, 2),
        "users": len(users),
    }


def neumf_figures(
    model_dir: Path, users: np.ndarray, targets: np.ndarray, known: sp.csr_matrix
) -> dict[str, float]:
    """The user's own NeuMF list: top 10 of every item but the user's other known items (full ranking)."""
    from model.base import load_model

    model = load_model(model_dir)
    hits, gains = [], []
    for start in range(0, len(users), 1024):
        chunk, target = users[start : start + 1024], targets[start : start + 1024]
        exclude = known[chunk].tolil()
        for row, item in enumerate(target.tolist()):
            exclude[row, item] = 0
        items, _, _ = model.recommend(chunk, K_AT, sp.csr_matrix(exclude))
        match = items == target[:, None]
        rank = np.where(match.any(axis=1), match.argmax(axis=1), -1)
        hits.append(rank >= 0)
        gains.append(np.where(rank >= 0, 1.0 / np.log2(np.maximum(rank, 0) + 2.0), 0.0))
    return {"hr@10": float(np.concatenate(hits).mean()), "ndcg@10": float(np.concatenate(gains).mean())}


def fit_neumf(data_dir: Path, split, dataset, path: Path) -> None:
    """NeuMF with the job's default settings, fitted on the training part (selecting on validation) and
    saved to `path` (~15 minutes on 2 cores)."""
    from batch.settings import PipelineSettings
    from model.registry import build_model

    settings = PipelineSettings(data_dir=data_dir)
    model = build_model(settings.model, **settings.model_options()).fit(split.train, split.validation)
    model.save(path, user_ids=dataset.user_ids, item_ids=dataset.item_ids)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("NCF_DATA_DIR"))
    parser.add_argument("--neumf-model", type=Path, help="NeuMF saved after fitting on the training part")
    parser.add_argument("--ks", default="10,20,50,100")
    parser.add_argument("--lasts", default="5,all")
    parser.add_argument("--users", type=int, default=0, help="evaluate only the first N users (0: all)")
    parser.add_argument("--name", default="foldin")
    parser.add_argument(
        "--rerender", action="store_true", help="only rewrite the Markdown from the JSON result"
    )
    args = parser.parse_args()
    if args.rerender:
        payload = json.loads((RESULTS / f"{args.name}.json").read_text())
        (RESULTS / f"{args.name}.md").write_text(render(payload))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    dataset = DataLoader(args.data_dir).load()
    split = leave_one_out(dataset)
    known = split.known
    ks = [int(k) for k in args.ks.split(",")]
    lasts = [None if v == "all" else int(v) for v in args.lasts.split(",")]
    stages = {
        "validation": (split.train, split.validation, None),
        "test": (
            split.train_with_validation(),
            split.test,
            (split.validation.user_idx, split.validation.item_idx),
        ),
    }
    sources = ["cooccurrence"]
    embeddings = None
    if args.neumf_model is not None and not (args.neumf_model / "model.json").exists():
        fit_neumf(args.data_dir, split, dataset, args.neumf_model)
    if args.neumf_model is not None:
        with np.load(args.neumf_model / "weights.npz") as npz:
            embeddings = npz["gmf/item_embedding"].astype(np.float32)
        sources.append("gmf_embedding")

    results: dict[str, dict] = {"validation": {}, "test": {}}
    for stage, (train, held, extra) in stages.items():
        users, targets = held.user_idx, held.item_idx
        if args.users:
            users, targets = users[: args.users], targets[: args.users]
        history = histories(split.train, extra)
        counts = train.item_counts()
        popular = np.lexsort((np.arange(len(counts)), -counts))[:POPULAR_DEPTH]
        popular_rank = np.full(len(counts), len(counts), dtype=np.int64)
        popular_rank[popular] = np.arange(len(popular))
        empty = NeighbourLists(np.zeros(len(counts) + 1, np.int64), np.empty(0, np.int32), np.empty(0))
        results[stage]["popular"] = evaluate(empty, popular, popular_rank, users, targets, history, known, 0)
        logger.info("%s popular: %s", stage, results[stage]["popular"])
        for source in sources:
            vectors = item_vectors(train) if source == "cooccurrence" else embeddings
            for k in ks:
                lists = neighbour_lists(vectors, k)
                for last in lasts:
                    name = f"{source} K={k} liked={'all' if last is None else f'newest {last}'}"
                    results[stage][name] = evaluate(
                        lists, popular, popular_rank, users, targets, history, known, last
                    )
                    logger.info("%s %s: %s", stage, name, results[stage][name])
        if args.neumf_model is not None:
            results[stage]["NeuMF, own list (fitted on train)"] = neumf_figures(
                args.neumf_model, users, targets, known
            )

    fold_ins = {k: v for k, v in results["validation"].items() if "K=" in k}
    chosen = max(fold_ins, key=lambda name: fold_ins[name]["hr@10"])
    leaderboard = json.loads((RESULTS / "leaderboard.json").read_text())
    neumf = next(m for m in leaderboard["models"] if m["name"] == "neumf")
    refit = neumf["test_refit_on_train_and_validation"]["full"]
    payload = {
        "command": "NCF_DATA_DIR=D python bench/foldin.py "
        + " ".join(
            f"--{k.replace('_', '-')} {v}"
            for k, v in vars(args).items()
            if v and k not in ("data_dir", "rerender")
        ),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
            "python": platform.python_version(),
        },
        "protocol": "full ranking, HR@10 / NDCG@10; liked = history before the held-out item; exclude = the "
        "user's other known items; lists from the interactions before the held-out item",
        "chosen_on_validation": chosen,
        "results": results,
        "neumf_leaderboard_test_full": {"hr@10": refit["hr@10"], "ndcg@10": refit["ndcg@10"]},
        "seconds": round(time.perf_counter() - started, 1),
    }
    (RESULTS / f"{args.name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    (RESULTS / f"{args.name}.md").write_text(render(payload))
    logger.info("chosen on validation: %s; wrote %s", chosen, RESULTS / f"{args.name}.json")


def render(payload: dict) -> str:
    lines = [
        "# New users without retraining (fold-in from the similar-movie lists)",
        "",
        f"Command: `{payload['command']}`; {payload['seconds']} s on {payload['machine']['cpus']} cores, "
        f"load average {', '.join(f'{x:.1f}' for x in payload['machine']['load_average'])}.",
        "",
        f"Protocol: {payload['protocol']}. Chosen on validation: **{payload['chosen_on_validation']}**.",
        "",
        "| variant | validation HR@10 | validation NDCG@10 | test HR@10 | test NDCG@10 |",
        "|---|---|---|---|---|",
    ]
    validation, test = payload["results"]["validation"], payload["results"]["test"]
    for name in validation:
        v, t = validation[name], test.get(name)
        test_cells = f"{t['hr@10']:.4f} | {t['ndcg@10']:.4f}" if t else "- | -"
        lines.append(f"| {name} | {v['hr@10']:.4f} | {v['ndcg@10']:.4f} | {test_cells} |")
    lb = payload["neumf_leaderboard_test_full"]
    lines += [
        f"| NeuMF, own list, refit on train + validation ([leaderboard](leaderboard.json)) | - | - | "
        f"{lb['hr@10']:.4f} | {lb['ndcg@10']:.4f} |",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
