"""Leaderboard of every registered baseline (and NeuMF when it is registered) on one leave-one-out split.

For each model: a small grid search scored on the VALIDATION item only (sampled protocol, NDCG@10), the
chosen configuration then evaluated on validation and test under both protocols (sampled: 1 + 99
candidates; full: every unrated item), its training time (median of several fits), and the test figures of
the same configuration refitted on train + validation (the published protocol trains on everything but the
test item). Published figures sit beside ours. iALS and EASE^R also search recency weighting (each user's
newest training positives get a larger value, as NeuMF's sampler repeats them), off being one grid point.

    python bench/leaderboard.py --data-dir /work/shared/data/ml-1m      # or NCF_DATA_DIR

Writes bench/results/leaderboard.json, leaderboard.md and leaderboard.png.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from model.base import Recommender
from model.data import DataLoader, Interactions, LeaveOneOutSplit, leave_one_out
from model.data.sampling import recency_label
from model.evaluation import Evaluator
from model.ncf.base import NCFModel
from model.registry import MODELS, build_model

logger = logging.getLogger("bench.leaderboard")

RESULTS = Path(__file__).resolve().parent / "results"
SELECTION_METRIC = ("sampled", "ndcg@10")
ORDER = ("itempop", "itemknn", "bpr", "ials", "eals", "ease", "neumf")
DISPLAY = {
    "itempop": "ItemPop",
    "itemknn": "ItemKNN (cosine)",
    "bpr": "BPR-MF",
    "ials": "iALS",
    "eals": "eALS",
    "ease": "EASE^R",
    "neumf": "NeuMF",
}
# Sampled protocol, test item, on the NCF authors' ML-1M split.
PUBLISHED = {
    "itempop": {"hr@10": 0.4533, "ndcg@10": 0.2542, "source": "Dacrema et al. 2019 (TopPop)"},
    "itemknn": {"hr@10": 0.6694, "ndcg@10": 0.3979, "source": "Dacrema et al. 2019"},
    "bpr": {"hr@10": 0.6305, "ndcg@10": 0.3730, "source": "Dacrema et al. 2019"},
    "ials": {"hr@10": 0.7109, "ndcg@10": 0.4382, "source": "Dacrema et al. 2019"},
    "eals": {"hr@10": None, "ndcg@10": None, "source": "He et al. 2017: chart only, about 4.5% below NeuMF"},
    "ease": {"hr@10": 0.7192, "ndcg@10": 0.4494, "source": "Dacrema et al. 2019"},
    "neumf": {"hr@10": 0.730, "ndcg@10": 0.447, "source": "He et al. 2017 (pretrained, 64 factors)"},
}
# Small grids around the constructor defaults; every point is scored on the validation item.
SEARCH: dict[str, dict[str, list]] = {
    "itemknn": {"k": [20, 50, 100, 200], "shrink": [0.0, 10.0, 100.0]},
    "bpr": {"regularization": [0.001, 0.01, 0.05]},  # fits take minutes here: three points only
    # Narrowed around the earlier choice (128, 30, 4); reg 120 added when recency weighting chose reg 60.
    "ials": {"factors": [128], "regularization": [30.0, 60.0, 120.0], "alpha": [2.0, 4.0]},
    "eals": {"c0": [256.0, 512.0], "regularization": [10.0]},  # fits take minutes here
    # 4000 and 8000 added (500 dropped): recency weights enlarge the Gram matrix and the best penalty grew.
    "ease": {"l2": [1000.0, 2000.0, 4000.0, 8000.0]},
}
# Recency weighting (recent_fraction, recent_weight), crossed with the grid above: off once (a weight is
# meaningless without a fraction), then each user's newest 10% or 20% of training positives at 2, 3, 4, 6
# or 8 (6 and 8 added when choices sat at the edge of the first grids).
RECENCY = [{"recent_fraction": 0.0, "recent_weight": 1.0}] + [
    {"recent_fraction": f, "recent_weight": w} for f in (0.1, 0.2) for w in (2.0, 3.0, 4.0, 6.0, 8.0)
]
JOINT_SEARCH: dict[str, list[dict]] = {"ials": RECENCY, "ease": RECENCY}


def grid(name: str, search: bool) -> list[dict]:
    """Parameter dicts to try for model `name` ([{}] = constructor defaults only)."""
    if not search:
        return [{}]
    space = SEARCH.get(name, {})
    points = [dict(zip(space, values, strict=True)) for values in itertools.product(*space.values())]
    return [{**point, **joint} for point in points for joint in JOINT_SEARCH.get(name, [{}])]


def searched_keys(name: str) -> list[str]:
    """Constructor parameters the search varies for model `name`."""
    return [*SEARCH.get(name, {}), *JOINT_SEARCH.get(name, [{}])[0]]


def make_model(name: str, params: dict, num_threads: int | None = None) -> Recommender:
    """A fresh model by registry name with `params` overriding its constructor defaults; `num_threads`
    (when given) overrides it for models that have one (iALS, BPR), without counting as a searched
    parameter."""
    default = build_model(name)
    if num_threads is not None and hasattr(default, "num_threads"):
        params = {**params, "num_threads": num_threads}
    return type(default)(**params) if params else default


def recency_of(model: Recommender) -> dict | None:
    """{"recent_fraction", "recent_weight"} the fitted model used (NCF models: their TrainConfig), None for
    models without recency weighting."""
    source = model.train_config if isinstance(model, NCFModel) else model
    if not hasattr(source, "recent_fraction"):
        return None
    return {"recent_fraction": source.recent_fraction, "recent_weight": source.recent_weight}


def _recency_cell(recency: dict | None) -> str:
    return "–" if recency is None else recency_label(recency["recent_fraction"], recency["recent_weight"])


def timed_fit(model: Recommender, train: Interactions, split: LeaveOneOutSplit) -> float:
    start = time.perf_counter()
    model.fit(train, split.validation if train is split.train else None)
    return time.perf_counter() - start


def run_model(name: str, split: LeaveOneOutSplit, evaluator: Evaluator, args: argparse.Namespace) -> dict:
    """Search, evaluate and time one model; returns its leaderboard entry."""
    search, best, best_model = [], None, None
    for params in grid(name, not args.no_search):
        model = make_model(name, params, args.num_threads)
        fit_s = timed_fit(model, split.train, split)
        validation = evaluator.evaluate(model, "validation")
        search.append({"params": params, "fit_seconds": round(fit_s, 2), "validation": validation})
        score = validation[SELECTION_METRIC[0]][SELECTION_METRIC[1]]
        logger.info("%s %s: fit %.1fs, validation %s", name, params, fit_s, validation["sampled"])
        if best is None or score > best[0]:
            best, best_model = (score, params, fit_s, validation), model
    _, params, first_fit_s, validation = best
    test = evaluator.evaluate(best_model, "test")
    fit_runs = [first_fit_s]
    while len(fit_runs) < args.timing_repeats and sum(fit_runs) < args.timing_budget:
        fit_runs.append(timed_fit(make_model(name, params, args.num_threads), split.train, split))
    refit = {}
    if not args.no_refit:
        if isinstance(best_model, NCFModel):
            # NCF models refit for the epoch count chosen on validation (no early stopping on seen items).
            refit_model = best_model.refit(split.train_with_validation())
        else:
            refit_model = make_model(name, params, args.num_threads)
            timed_fit(refit_model, split.train_with_validation(), split)
        refit = evaluator.evaluate(refit_model, "test")
    default_params = {k: getattr(build_model(name), k) for k in searched_keys(name)}
    return {
        "name": name,
        "display": DISPLAY.get(name, name),
        "chosen_params": params,
        "recency": recency_of(best_model),
        "constructor_defaults": default_params,
        "chosen_equals_defaults": all(default_params[k] == v for k, v in params.items()),
        "fit_seconds": {
            "median": round(statistics.median(fit_runs), 2),
            "runs": [round(s, 2) for s in fit_runs],
        },
        "validation": validation,
        "test": test,
        "test_refit_on_train_and_validation": refit,
        "published_sampled_test": PUBLISHED.get(name) if args.published else None,
        "search": search,
    }


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.4f}"


def to_markdown(report: dict) -> str:
    meta, rows = report["meta"], report["models"]
    lines = [
        f"# Leaderboard: {meta['dataset']}, leave-one-out",
        "",
        f"Command: `{meta['command']}`  ",
        f"Data: {meta['dataset']} ({meta['n_users']} users, {meta['n_items']} items, "
        f"{meta['n_interactions']} interactions), split seed {meta['seed']}, generated {meta['generated']}.",
        "",
        "Hyperparameters chosen on the validation item only (sampled NDCG@10); test figures are of that "
        "one configuration. Published figures: sampled protocol, test item, on the NCF authors' split "
        "(ours is a fresh leave-one-out of this copy, same rule: newest rating per user is the test item).",
        "",
        'Recency: the chosen recency weighting of the training positives ("newest 10% x2": each user\'s '
        'newest 10% of training positives count 2-fold; "off"; "–": the model has no such option, or '
        "its row was made before the option existed).",
        "",
        "## Test item, sampled protocol (1 positive + 99 negatives), model trained on train only",
        "",
        "| model | recency | HR@10 | NDCG@10 | published HR@10 | published NDCG@10 | Δ HR@10 | Δ NDCG@10 "
        "| HR@10, refit train+val | NDCG@10, refit train+val | fit s (median) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t, pub, refit = (
            r["test"]["sampled"],
            r["published_sampled_test"] or {},
            r["test_refit_on_train_and_validation"],
        )
        ph, pn = pub.get("hr@10"), pub.get("ndcg@10")
        dh = None if ph is None else t["hr@10"] - ph
        dn = None if pn is None else t["ndcg@10"] - pn
        rs = refit.get("sampled", {})
        lines.append(
            f"| {r['display']} | {_recency_cell(r.get('recency'))} | {t['hr@10']:.4f} | {t['ndcg@10']:.4f} "
            f"| {_fmt(ph)} | {_fmt(pn)} | "
            f"{'–' if dh is None else f'{dh:+.4f}'} | {'–' if dn is None else f'{dn:+.4f}'} | "
            f"{_fmt(rs.get('hr@10'))} | {_fmt(rs.get('ndcg@10'))} | {r['fit_seconds']['median']:.1f} |"
        )
    lines += [
        "",
        "## Both protocols, validation and test (trained on train only)",
        "",
        "| model | val sampled HR@10 | val sampled NDCG@10 | val full HR@10 | val full NDCG@10 "
        "| test sampled HR@10 | test sampled NDCG@10 | test full HR@10 | test full NDCG@10 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        v, t = r["validation"], r["test"]
        cells = [v["sampled"], v["full"], t["sampled"], t["full"]]
        lines.append(
            f"| {r['display']} | "
            + " | ".join(f"{c['hr@10']:.4f} | {c['ndcg@10']:.4f}" for c in cells)
            + " |"
        )
    lines += ["", "## Chosen hyperparameters and the validation search", ""]
    for r in rows:
        same = "equal to" if r["chosen_equals_defaults"] else "NOT equal to"
        lines.append(
            f"**{r['display']}**: chosen {json.dumps(r['chosen_params'])} ({same} the constructor defaults "
            f"{json.dumps(r['constructor_defaults'])}); fit runs (s): {r['fit_seconds']['runs']}"
        )
        lines.append("")
        if len(r["search"]) > 1:
            lines += [
                "| params | val sampled HR@10 | val sampled NDCG@10 | val full HR@10 | fit s |",
                "|---|---|---|---|---|",
            ]
            for s in r["search"]:
                v = s["validation"]
                lines.append(
                    f"| `{json.dumps(s['params'])}` | {v['sampled']['hr@10']:.4f} "
                    f"| {v['sampled']['ndcg@10']:.4f} | {v['full']['hr@10']:.4f} | {s['fit_seconds']:.1f} |"
                )
            lines.append("")
    lines += ["## Who wins here", ""]
    for protocol in ("sampled", "full"):
        ranked = sorted(rows, key=lambda r: r["test"][protocol]["ndcg@10"], reverse=True)
        if len(ranked) > 1:
            first, second = ranked[0], ranked[1]
            a, b = first["test"][protocol], second["test"][protocol]
            lines.append(
                f"- Test, {protocol} protocol: **{first['display']}** is best by NDCG@10 "
                f"({a['ndcg@10']:.4f} vs {b['ndcg@10']:.4f} for {second['display']}; HR@10 "
                f"{a['hr@10']:.4f} vs {b['hr@10']:.4f})."
            )
    lines += [
        "",
        "## Timing note",
        "",
        f"Training times are wall-clock seconds on a shared, noisy machine ({meta['machine']}) where other "
        "jobs ran at the same time; medians of the listed fits (up to 3, fewer once they took 2 minutes). "
        "Treat them as rough orders of magnitude.",
        "",
    ]
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    """Grouped bars: test HR@10 / NDCG@10, ours (sampled and full) and published (sampled)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["models"]
    names = [r["display"] for r in rows]
    x = np.arange(len(rows))
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    for ax, metric in zip(axes, ("hr@10", "ndcg@10"), strict=True):
        ours = [r["test"]["sampled"][metric] for r in rows]
        full = [r["test"]["full"][metric] for r in rows]
        pub = [(r["published_sampled_test"] or {}).get(metric) or np.nan for r in rows]
        ax.bar(x - 0.27, ours, 0.27, label="ours, sampled")
        ax.bar(x, pub, 0.27, label="published, sampled")
        ax.bar(x + 0.27, full, 0.27, label="ours, full ranking")
        ax.set_xticks(x, names, rotation=25, ha="right")
        ax.set_title(f"{report['meta']['dataset']}, test {metric.upper()}")
        ax.grid(axis="y", alpha=0.3)
        ax.set_ylim(0, 1.2 * np.nanmax([*ours, *pub]))
        ax.legend(loc="upper center", ncol=3, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_views(report: dict, out_dir: Path) -> None:
    """leaderboard.md and leaderboard.png from the report."""
    (out_dir / "leaderboard.md").write_text(to_markdown(report))
    plot(report, out_dir / "leaderboard.png")
    logger.info("wrote %s", out_dir / "leaderboard.{json,md,png}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default=os.environ.get("NCF_DATA_DIR"), help="default: $NCF_DATA_DIR")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--seed", type=int, default=0, help="seed of the evaluation negatives")
    parser.add_argument("--models", nargs="+", default=None, help=f"subset of {ORDER}")
    parser.add_argument("--no-search", action="store_true", help="constructor defaults only")
    parser.add_argument("--no-refit", action="store_true", help="skip the train+validation refit")
    parser.add_argument("--timing-repeats", type=int, default=3, help="fits of the chosen config to time")
    parser.add_argument(
        "--timing-budget",
        type=float,
        default=120.0,
        help="no extra timing fit once the fits took this long (s)",
    )
    parser.add_argument(
        "--num-threads",
        type=int,
        default=None,
        help="native threads of models that take num_threads (iALS, BPR); default: their constructor's",
    )
    parser.add_argument(
        "--update", action="store_true", help="replace only the --models rows of an existing leaderboard.json"
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="rewrite the .md and .png from an existing leaderboard.json",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    if args.render_only:
        report = json.loads((args.out_dir / "leaderboard.json").read_text())
        write_views(report, args.out_dir)
        return 0
    if not args.data_dir:
        parser.error("pass --data-dir or set NCF_DATA_DIR")

    names = [n for n in (args.models or ORDER) if n in MODELS]
    missing = [n for n in (args.models or ORDER) if n not in MODELS]
    if missing:
        logger.warning("not registered, skipped: %s", missing)
    dataset = DataLoader(args.data_dir).load()
    args.published = dataset.name == "ml-1m"  # the published figures are for MovieLens 1M only
    split = leave_one_out(dataset, seed=args.seed)
    evaluator = Evaluator(split, k=10, protocols=("sampled", "full"))
    rows = [run_model(name, split, evaluator, args) for name in names]

    command = "python bench/leaderboard.py " + " ".join(argv if argv is not None else sys.argv[1:])
    previous = args.out_dir / "leaderboard.json"
    if args.update and previous.exists():
        old = json.loads(previous.read_text())
        fresh = {r["name"]: r for r in rows}
        rows = [fresh.pop(r["name"], r) for r in old["models"]] + list(fresh.values())
        command = f"{old['meta']['command']}; then {command}"
    report = {
        "meta": {
            "command": command,
            "dataset": dataset.name,
            "n_users": dataset.n_users,
            "n_items": dataset.n_items,
            "n_interactions": dataset.n_interactions,
            "seed": args.seed,
            "selection": f"validation {SELECTION_METRIC[0]} {SELECTION_METRIC[1]}",
            "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, shared with other jobs",
            "skipped_unregistered": missing,
        },
        "models": rows,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "leaderboard.json").write_text(json.dumps(report, indent=2) + "\n")
    write_views(report, args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
