"""Leaderboard of every registered baseline (and NeuMF when it is registered) on one leave-one-out split.

For each model: a small grid search scored on the VALIDATION item only (sampled protocol, NDCG@10), or the
configuration another leaderboard file chose that way (`--chosen-from`, no search); the chosen
configuration is then fitted once per training seed (stochastic models; deterministic ones once) and
evaluated on validation and test under both protocols (sampled: 1 + 99 candidates; full: every unrated
item, with Recall@20 and MRR beside HR@10 and NDCG@10), timed, and refitted on train + validation for
test figures (the published protocol trains on everything but the test item). Figures are means over the
seeds with their standard deviation; each run's per-user figures are saved, and paired tests (t-test and
Wilcoxon signed-rank, per-user figures averaged over seeds) compare every row with the best row of each
column and NeuMF with iALS (sampled) and EASE^R (full). Published figures sit beside ours. iALS and EASE^R
also search recency weighting (each user's newest training positives get a larger value, as NeuMF's
sampler repeats them), off being one grid point.

    python bench/leaderboard.py --data-dir /work/shared/data/ml-1m      # or NCF_DATA_DIR
    python bench/leaderboard.py --chosen-from bench/results/leaderboard.json   # seeds only, no search

Writes bench/results/leaderboard.json, leaderboard.md, leaderboard.png and leaderboard_per_user/*.npz.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from model.base import Recommender, constructor_parameters
from model.data import DataLoader, Interactions, LeaveOneOutSplit, leave_one_out
from model.data.sampling import recency_label
from model.evaluation import Evaluator, PerUser
from model.ncf.base import NCFModel
from model.paired import paired_test
from model.registry import MODELS, build_model

logger = logging.getLogger("bench.leaderboard")

RESULTS = Path(__file__).resolve().parent / "results"
PER_USER_DIR = "leaderboard_per_user"
REFIT = "test_refit_on_train_and_validation"
SEEDS = (0, 1, 2)
# Column groups of the paired tests: (figures, protocol); "test_refit" names the refit in the .npz files.
PAIRED_GROUPS = (("test", "sampled"), ("test", "full"), (REFIT, "sampled"), (REFIT, "full"))
NPZ_NAME = {"validation": "validation", "test": "test", REFIT: "test_refit"}
# The issue's goal: NeuMF (or the NeuMF blend) at or above iALS on the sampled protocol and EASE^R on full
# ranking.
GOAL = (
    ("neumf", "ials", "sampled"),
    ("neumf", "ease", "full"),
    ("neumf_blend", "ials", "sampled"),
    ("neumf_blend", "ease", "full"),
)
GOAL_METRICS = ("hr@10", "ndcg@10")
ALPHA = 0.05
SELECTION_METRIC = ("sampled", "ndcg@10")
ORDER = ("itempop", "itemknn", "bpr", "ials", "eals", "ease", "neumf", "neumf_blend")
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
# Models whose configuration is chosen on validation by another script (no grid here: their defaults).
CHOSEN_ELSEWHERE = {
    "neumf_blend": "its partner, weight and NeuMF's scores (the constructor defaults) were chosen on the "
    "validation item by bench/blend_validation.py (blend_validation_logit.md, blend_validation.md)",
}


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


def make_model(
    name: str, params: dict, num_threads: int | None = None, seed: int | None = None
) -> Recommender:
    """A fresh model by registry name with `params` overriding its constructor defaults (NCF models: their
    TrainConfig fields); `num_threads` (when given) overrides it for models that have one (iALS, BPR),
    without counting as a searched parameter; `seed` (when given) is the training seed of stochastic
    models and ignored by deterministic ones."""
    default = build_model(name)
    if isinstance(default, NCFModel):
        train = {**params, **({} if seed is None else {"seed": seed})}
        return build_model(name, engine=default.engine, train_config=train) if train else default
    if num_threads is not None and hasattr(default, "num_threads"):
        params = {**params, "num_threads": num_threads}
    if seed is not None and is_stochastic(default):
        params = {**params, "seed": seed}
    return type(default)(**params) if params else default


def is_stochastic(model: Recommender) -> bool:
    """True for models whose fit depends on a training seed (NCF models, and models taking `seed`)."""
    return isinstance(model, NCFModel) or "seed" in {p.name for p in constructor_parameters(type(model))}


def display_of(name: str, model: Recommender) -> str:
    """A row's name in the results: the model's own `display_name()` when it has one (the NeuMF blend:
    both members and the weight), else `DISPLAY`'s."""
    display_name = getattr(model, "display_name", None)
    return display_name() if display_name is not None else DISPLAY.get(name, name)


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


def search_params(
    name: str, split: LeaveOneOutSplit, evaluator: Evaluator, args: argparse.Namespace
) -> tuple[dict, list[dict], tuple[Recommender, float] | None]:
    """The configuration of model `name` to evaluate, the validation search behind it, and the fitted
    model of that configuration with its fit seconds (None when nothing was fitted).

    With `--chosen-from`, the configuration and its search record come from that leaderboard file and
    nothing is fitted here; otherwise the grid is fitted (constructor seed) and scored on validation.
    """
    if args.chosen is not None:
        if name not in args.chosen:
            raise SystemExit(f"{name} has no row in {args.chosen_from}: run its search first")
        row = args.chosen[name]
        logger.info(
            "%s: configuration chosen on validation in %s: %s", name, args.chosen_from, row["chosen_params"]
        )
        return row["chosen_params"], row.get("search", []), None
    search, best = [], None
    for params in grid(name, not args.no_search):
        model = make_model(name, params, args.num_threads)
        fit_s = timed_fit(model, split.train, split)
        validation = evaluator.evaluate(model, "validation")
        search.append({"params": params, "fit_seconds": round(fit_s, 2), "validation": validation})
        score = validation[SELECTION_METRIC[0]][SELECTION_METRIC[1]]
        logger.info("%s %s: fit %.1fs, validation %s", name, params, fit_s, validation["sampled"])
        if best is None or score > best[0]:
            best = (score, params, model, fit_s)
    return best[1], search, (best[2], best[3])


def per_user_file(name: str, seed: int | None) -> str:
    """Path, relative to the results directory, of one run's per-user figures."""
    return f"{PER_USER_DIR}/{name}.npz" if seed is None else f"{PER_USER_DIR}/{name}_seed{seed}.npz"


def save_per_user(path: Path, split: LeaveOneOutSplit, arrays: dict[str, PerUser]) -> None:
    """One run's per-user figures as a compressed .npz: `{which}.user_idx` (int32, the evaluated users of
    validation and test) and `{which}.{protocol}.{metric}` (float64, in that user order), `which` being
    validation, test and test_refit (the refit model on the test users)."""
    payload = {f"{which}.user_idx": split.held_out(which).user_idx for which in ("validation", "test")}
    for which, per_user in arrays.items():
        for protocol, metrics in per_user.items():
            for metric, values in metrics.items():
                payload[f"{which}.{protocol}.{metric}"] = values
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **payload)


def run_seed(
    name: str,
    params: dict,
    seed: int | None,
    split: LeaveOneOutSplit,
    evaluator: Evaluator,
    args: argparse.Namespace,
    fitted: tuple[Recommender, float] | None = None,
) -> tuple[dict, Recommender]:
    """Fit (or take `fitted`), evaluate on validation and test, refit on train + validation and evaluate on
    test, for one training seed; saves the per-user figures. Returns the run's record and its model."""
    if fitted is None:
        model = make_model(name, params, args.num_threads, seed)
        fit_s = timed_fit(model, split.train, split)
    else:
        model, fit_s = fitted
    validation, validation_users = evaluator.evaluate_per_user(model, "validation")
    test, test_users = evaluator.evaluate_per_user(model, "test")
    arrays = {"validation": validation_users, "test": test_users}
    refit, refit_s = {}, None
    if not args.no_refit:
        # NCF models refit for the epoch count chosen on validation (no early stopping on seen items).
        start = time.perf_counter()
        refit_model = model.refit(split.train_with_validation())
        refit_s = time.perf_counter() - start
        refit, arrays["test_refit"] = evaluator.evaluate_per_user(refit_model, "test")
    relative = per_user_file(name, seed)
    save_per_user(args.out_dir / relative, split, arrays)
    logger.info("%s seed %s: fit %.1fs, test %s, refit test %s", name, seed, fit_s, test, refit)
    record = {
        "seed": seed,
        "fit_seconds": round(fit_s, 2),
        "refit_seconds": None if refit_s is None else round(refit_s, 2),
        "validation": validation,
        "test": test,
        REFIT: refit,
        "per_user_file": relative,
    }
    return record, model


def _mean_and_spread(records: list[dict], which: str) -> tuple[dict, dict | None]:
    """Mean over the runs of every figure of `which`, and their sample standard deviation (None for one
    run)."""
    first = records[0][which]
    mean = {p: {m: statistics.fmean(r[which][p][m] for r in records) for m in first[p]} for p in first}
    if len(records) < 2:
        return mean, None
    spread = {p: {m: statistics.stdev(r[which][p][m] for r in records) for m in first[p]} for p in first}
    return mean, spread


def run_model(name: str, split: LeaveOneOutSplit, evaluator: Evaluator, args: argparse.Namespace) -> dict:
    """Search (or take the chosen configuration), then fit, evaluate and time one model per training seed;
    returns its leaderboard entry (figures: means over the seeds)."""
    params, search, fitted = search_params(name, split, evaluator, args)
    stochastic = is_stochastic(build_model(name))
    seeds = list(args.seeds) if stochastic else [None]
    runs, model = [], None
    for seed in seeds:
        # The search fitted the constructor's seed; that fit is the run of that seed.
        reuse = fitted if fitted is not None and (seed is None or seed == _seed_of(fitted[0])) else None
        record, model = run_seed(name, params, seed, split, evaluator, args, reuse)
        runs.append(record)
    fit_runs = [r["fit_seconds"] for r in runs]
    while len(fit_runs) < args.timing_repeats and sum(fit_runs) < args.timing_budget:
        fit_runs.append(round(timed_fit(make_model(name, params, args.num_threads), split.train, split), 2))
    default_params = {k: getattr(build_model(name), k) for k in searched_keys(name)}
    entry = {
        "name": name,
        "display": display_of(name, model),
        "chosen_params": params,
        "chosen_from": None if args.chosen_from is None else str(args.chosen_from),
        "recency": recency_of(model),
        "constructor_defaults": default_params,
        "chosen_equals_defaults": all(default_params[k] == v for k, v in params.items()),
        "stochastic": stochastic,
        "seeds": seeds,
        "fit_seconds": {"median": round(statistics.median(fit_runs), 2), "runs": fit_runs},
    }
    spread = {}
    for which in ("validation", "test", REFIT):
        entry[which], spread[which] = _mean_and_spread(runs, which) if runs[0][which] else ({}, None)
    entry["spread_over_seeds"] = spread if len(runs) > 1 else None
    entry["runs"] = runs
    entry["published_sampled_test"] = PUBLISHED.get(name) if args.published else None
    entry["search"] = search
    return entry


def _seed_of(model: Recommender) -> int | None:
    source = model.train_config if isinstance(model, NCFModel) else model
    return getattr(source, "seed", None)


def load_per_user(out_dir: Path, row: dict) -> dict[str, np.ndarray] | None:
    """A row's per-user figures, each the mean over its runs (seeds), keyed as in the .npz files; None when
    the row has no per-user files."""
    files = [run.get("per_user_file") for run in row.get("runs", [])]
    if not files or any(f is None or not (out_dir / f).exists() for f in files):
        return None
    loaded = [dict(np.load(out_dir / f)) for f in files]
    for other in loaded[1:]:
        for key in ("validation.user_idx", "test.user_idx"):
            if not np.array_equal(other[key], loaded[0][key]):
                raise ValueError(f"{row['name']}: the runs evaluated different users ({key})")
    return {
        key: loaded[0][key] if key.endswith("user_idx") else np.mean([run[key] for run in loaded], axis=0)
        for key in loaded[0]
    }


def difference_verdict(result: dict) -> str:
    """Whether both tests call a difference real (p < ALPHA), both call it noise, or they disagree."""
    real = [result["t_pvalue"] < ALPHA, result["wilcoxon_pvalue"] < ALPHA]
    if all(real):
        return "real"
    return "noise" if not any(real) else "tests disagree"


def paired_tests(report: dict, out_dir: Path) -> dict:
    """Paired tests of the per-user figures (mean over each row's seeds): every row against the best row
    (highest mean) of each column, and the goal's comparisons (NeuMF against iALS, sampled, and EASE^R,
    full). Rows without per-user files are left out."""
    rows = report["models"]
    users = {r["name"]: load_per_user(out_dir, r) for r in rows}
    for name, arrays in users.items():
        for other, other_arrays in users.items():
            if arrays is not None and other_arrays is not None:
                if not np.array_equal(arrays["test.user_idx"], other_arrays["test.user_idx"]):
                    raise ValueError(f"{name} and {other} were evaluated on different users")
    groups: dict[str, dict] = {}
    for which, protocol in PAIRED_GROUPS:
        rows_with = [r for r in rows if users[r["name"]] is not None and r.get(which, {}).get(protocol)]
        if len(rows_with) < 2:
            continue
        metrics = [m for m in rows_with[0][which][protocol] if m != "seconds"]
        group = {}
        for metric in metrics:
            key = f"{NPZ_NAME[which]}.{protocol}.{metric}"
            best = max(rows_with, key=lambda r, m=metric: r[which][protocol][m])
            against = users[best["name"]][key]
            group[metric] = {
                "best": best["name"],
                "vs_best": {
                    r["name"]: paired_test(users[r["name"]][key], against).to_dict()
                    for r in rows_with
                    if r is not best
                },
            }
        groups[f"{which}.{protocol}"] = group
    goal = []
    named = {r["name"]: r for r in rows}
    for model, other, protocol in GOAL:
        if users.get(model) is None or users.get(other) is None:
            continue
        for which in ("test", REFIT):
            if not (named[model].get(which) and named[other].get(which)):
                continue
            for metric in GOAL_METRICS:
                key = f"{NPZ_NAME[which]}.{protocol}.{metric}"
                result = paired_test(users[model][key], users[other][key]).to_dict()
                goal.append(
                    {
                        "model": model,
                        "against": other,
                        "figures": which,
                        "protocol": protocol,
                        "metric": metric,
                        "model_mean": named[model][which][protocol][metric],
                        "against_mean": named[other][which][protocol][metric],
                        "at_or_above": result["mean_difference"] >= 0,
                        "difference": difference_verdict(result),
                        **result,
                    }
                )
    return {
        "unit": "user (the same users in every row)",
        "per_user": "mean over the row's training seeds (one run for deterministic models)",
        "alpha": ALPHA,
        "groups": groups,
        "goal": goal,
    }


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.4f}"


def _cell(row: dict, which: str, protocol: str, metric: str) -> str:
    """A row's figure: mean over its seeds, ± their sample standard deviation when it has several."""
    value = row.get(which, {}).get(protocol, {}).get(metric)
    if value is None:
        return "–"
    spread = ((row.get("spread_over_seeds") or {}).get(which) or {}).get(protocol, {}).get(metric)
    return f"{value:.4f}" if spread is None else f"{value:.4f} ± {spread:.4f}"


def _p(p: float) -> str:
    """A p-value to two significant digits; below 1e-300 (where float64 underflows to 0) as "<1e-300"."""
    return "<1e-300" if p < 1e-300 else f"{p:.2g}"


def _difference(result: dict) -> str:
    return (
        f"{result['mean_difference']:+.4f} [{result['ci_low']:+.4f}, {result['ci_high']:+.4f}]; "
        f"p {_p(result['t_pvalue'])} / {_p(result['wilcoxon_pvalue'])}"
    )


def _runs_cell(row: dict) -> str:
    seeds = row.get("seeds")
    if seeds is None:
        return "–"
    return "1 (deterministic)" if seeds == [None] else f"{len(seeds)} (seeds {', '.join(map(str, seeds))})"


GROUP_TITLES = {
    "test.sampled": "Test item, sampled protocol, trained on train only",
    "test.full": "Test item, full ranking, trained on train only",
    f"{REFIT}.sampled": "Test item, sampled protocol, refit on train + validation",
    f"{REFIT}.full": "Test item, full ranking, refit on train + validation",
}
METRIC_TITLES = {"hr@10": "HR@10", "ndcg@10": "NDCG@10", "recall@20": "Recall@20", "mrr": "MRR"}


def paired_markdown(report: dict) -> list[str]:
    paired = report.get("paired")
    if not paired or not paired["groups"]:
        return []
    display = {r["name"]: r["display"] for r in report["models"]}
    n = next(iter(next(iter(paired["groups"].values())).values()))
    n_users = next(iter(n["vs_best"].values()))["n"]
    lines = [
        "## Paired tests against the best row",
        "",
        f"For each column, every row's per-user figures minus those of the column's best row (highest "
        f"mean), over the {n_users} test users: mean difference, its 95% confidence interval (t "
        "distribution), and the two-sided p-values of the paired t-test / the Wilcoxon signed-rank test "
        f"(zero differences dropped). Per-user figures: {paired['per_user']}. A difference is called "
        f"real below when both p-values are under {paired['alpha']}.",
        "",
    ]
    for key, group in paired["groups"].items():
        metrics = list(group)
        lines += [
            f"### {GROUP_TITLES.get(key, key)}",
            "",
            "| model | " + " | ".join(f"Δ {METRIC_TITLES.get(m, m)} vs best" for m in metrics) + " |",
            "|---|" + "---|" * len(metrics),
        ]
        names = list(dict.fromkeys([*group[metrics[0]]["vs_best"], *(g["best"] for g in group.values())]))
        order = [r["name"] for r in report["models"] if r["name"] in names]
        for name in order:
            cells = [
                "**best**" if group[m]["best"] == name else _difference(group[m]["vs_best"][name])
                for m in metrics
            ]
            lines.append(f"| {display[name]} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def goal_markdown(report: dict) -> list[str]:
    goal = (report.get("paired") or {}).get("goal")
    if not goal:
        return []
    display = {r["name"]: r["display"] for r in report["models"]}
    lines = [
        "## The goal: default NeuMF (and the NeuMF blend) at or above iALS (sampled) and EASE^R (full "
        "ranking)",
        "",
        "Test item, figures averaged over the training seeds; Δ = the model - the other model, paired over "
        "users (per-user figures averaged over seeds); 95% CI of Δ; p-values of the paired t-test and the "
        "Wilcoxon signed-rank test.",
        "",
        "| model | trained on | protocol | metric | its figure | other | Δ [95% CI] | p (t) | p (Wilcoxon) "
        "| at or above? | difference |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    trained = {"test": "train", REFIT: "train + validation"}
    for g in goal:
        lines.append(
            f"| {display[g['model']]} | {trained[g['figures']]} | {g['protocol']} "
            f"| {METRIC_TITLES.get(g['metric'], g['metric'])} "
            f"| {g['model_mean']:.4f} | {display[g['against']]} {g['against_mean']:.4f} "
            f"| {g['mean_difference']:+.4f} [{g['ci_low']:+.4f}, {g['ci_high']:+.4f}] "
            f"| {_p(g['t_pvalue'])} | {_p(g['wilcoxon_pvalue'])} | {'yes' if g['at_or_above'] else 'no'} "
            f"| {g['difference']} |"
        )
    lines.append("")
    models = list(dict.fromkeys(g["model"] for g in goal))
    for model, which in itertools.product(models, ("test", REFIT)):
        rows = [g for g in goal if g["figures"] == which and g["model"] == model]
        if not rows:
            continue
        below = [g for g in rows if not g["at_or_above"]]
        where = f"{display[model]}, trained on {trained[which]}"
        if not below:
            lines.append(f"- {where}: **goal reached**: at or above on all {len(rows)} figures.")
            continue
        parts = [
            f"{display[g['against']]} {g['protocol']} {METRIC_TITLES.get(g['metric'], g['metric'])} "
            f"({g['mean_difference']:+.4f}, {g['difference']})"
            for g in below
        ]
        lines.append(
            f"- {where}: **goal not reached**: below on {len(below)} of {len(rows)} figures: "
            + "; ".join(parts)
            + "."
        )
    lines.append("")
    return lines


def _seeds_paragraph(rows: list[dict]) -> list[str]:
    stochastic = [r["display"] for r in rows if r.get("stochastic")]
    deterministic = [r["display"] for r in rows if r.get("stochastic") is False]
    older = [r["display"] for r in rows if "stochastic" not in r]
    text = (
        f"Training seeds: the stochastic models ({', '.join(stochastic) or 'none here'}: their fit depends "
        "on a seed) are fitted once per training seed, their figures being the mean over the seeds ± the "
        f"sample standard deviation; the deterministic ones ({', '.join(deterministic) or 'none here'}) are "
        "fitted once. Split and evaluation negatives are the same for every run."
    )
    if older:
        text += f" Rows from one run made before seeds were recorded: {', '.join(older)}."
    return [text, ""]


def to_markdown(report: dict) -> str:
    meta, rows = report["meta"], report["models"]
    lines = [
        f"# Leaderboard: {meta['dataset']}, leave-one-out",
        "",
        f"Command: `{meta['command']}`  ",
        f"Data: {meta['dataset']} ({meta['n_users']} users, {meta['n_items']} items, "
        f"{meta['n_interactions']} interactions), split seed {meta['seed']}, generated {meta['generated']}.",
        "",
        *(
            [f"**Unfinished**: the run stopped before these models: {', '.join(meta['unfinished'])}.", ""]
            if meta.get("unfinished")
            else []
        ),
        "Hyperparameters chosen on the validation item only (sampled NDCG@10); test figures are of that "
        "one configuration. Published figures: sampled protocol, test item, on the NCF authors' split "
        "(ours is a fresh leave-one-out of this copy, same rule: newest rating per user is the test item).",
        "",
        *_seeds_paragraph(rows),
        'Recency: the chosen recency weighting of the training positives ("newest 10% x2": each user\'s '
        'newest 10% of training positives count 2-fold; "off"; "–": the model has no such option, or '
        "its row was made before the option existed).",
        "",
        "## Test item, sampled protocol (1 positive + 99 negatives), model trained on train only",
        "",
        "| model | recency | runs | HR@10 | NDCG@10 | published HR@10 | published NDCG@10 | Δ HR@10 "
        "| Δ NDCG@10 | HR@10, refit train+val | NDCG@10, refit train+val | fit s (median) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t, pub = r["test"]["sampled"], r["published_sampled_test"] or {}
        ph, pn = pub.get("hr@10"), pub.get("ndcg@10")
        dh = None if ph is None else t["hr@10"] - ph
        dn = None if pn is None else t["ndcg@10"] - pn
        lines.append(
            f"| {r['display']} | {_recency_cell(r.get('recency'))} | {_runs_cell(r)} "
            f"| {_cell(r, 'test', 'sampled', 'hr@10')} | {_cell(r, 'test', 'sampled', 'ndcg@10')} "
            f"| {_fmt(ph)} | {_fmt(pn)} | "
            f"{'–' if dh is None else f'{dh:+.4f}'} | {'–' if dn is None else f'{dn:+.4f}'} | "
            f"{_cell(r, REFIT, 'sampled', 'hr@10')} | {_cell(r, REFIT, 'sampled', 'ndcg@10')} "
            f"| {r['fit_seconds']['median']:.1f} |"
        )
    lines += [
        "",
        "## Full ranking (every unrated movie), test item",
        "",
        "| model | HR@10 | NDCG@10 | Recall@20 | MRR | refit: HR@10 | refit: NDCG@10 | refit: Recall@20 "
        "| refit: MRR |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [_cell(r, which, "full", m) for which in ("test", REFIT) for m in METRIC_TITLES]
        lines.append(f"| {r['display']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Refit: the same configuration and seed trained on train + validation. Recall@20 with one held-out "
        "item per user equals HR@20; MRR is the mean of 1 / rank over the whole ranking (no cut-off).",
        "",
        "## Both protocols, validation and test (trained on train only)",
        "",
        "| model | val sampled HR@10 | val sampled NDCG@10 | val full HR@10 | val full NDCG@10 "
        "| test sampled HR@10 | test sampled NDCG@10 | test full HR@10 | test full NDCG@10 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [
            _cell(r, which, protocol, m)
            for which in ("validation", "test")
            for protocol in ("sampled", "full")
            for m in ("hr@10", "ndcg@10")
        ]
        lines.append(f"| {r['display']} | " + " | ".join(cells) + " |")
    lines += ["", *goal_markdown(report), *paired_markdown(report)]
    lines += [
        "## Per-user results",
        "",
        f"`{PER_USER_DIR}/NAME_seedS.npz` (stochastic models, one file per training seed) and "
        f"`{PER_USER_DIR}/NAME.npz` (deterministic models), compressed NumPy archives; each row's files are "
        "listed under `runs[].per_user_file` in leaderboard.json. Keys: `validation.user_idx` and "
        "`test.user_idx` (int32, the evaluated users' dense indices) and `WHICH.PROTOCOL.METRIC` (float64, "
        "one value per user in that order), WHICH being `validation`, `test` or `test_refit` (the refit "
        "model on the test users), PROTOCOL `sampled` (metrics `hr@10`, `ndcg@10`) or `full` (also "
        "`recall@20`, `mrr`). The mean of an array is the figure in the tables above.",
        "",
        "## Chosen hyperparameters and the validation search",
        "",
        *(
            [
                "Rows whose configuration was chosen in another leaderboard file (`--chosen-from`) carry "
                "that file's search record: its validation figures come from the run that made it (the "
                "sampled ones against the evaluation candidates of that run), not from this one.",
                "",
            ]
            if any(r.get("chosen_from") for r in rows)
            else []
        ),
    ]
    for r in rows:
        same = "equal to" if r["chosen_equals_defaults"] else "NOT equal to"
        source = f" (chosen in {r['chosen_from']}, search not rerun)" if r.get("chosen_from") else ""
        source += f"; {CHOSEN_ELSEWHERE[r['name']]}" if r["name"] in CHOSEN_ELSEWHERE else ""
        lines.append(
            f"**{r['display']}**: chosen {json.dumps(r['chosen_params'])}{source} ({same} the constructor "
            f"defaults {json.dumps(r['constructor_defaults'])}); fit runs (s): {r['fit_seconds']['runs']}"
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
                f"- Test, {protocol} protocol (trained on train only): **{first['display']}** is best by "
                f"NDCG@10 ({a['ndcg@10']:.4f} vs {b['ndcg@10']:.4f} for {second['display']}; HR@10 "
                f"{a['hr@10']:.4f} vs {b['hr@10']:.4f})."
            )
    lines += [
        "",
        "## Timing note",
        "",
        f"Training times are wall-clock seconds on a shared, noisy machine ({meta['machine']}) where other "
        "jobs ran at the same time; medians of the listed fits on train (one per training seed; "
        "deterministic models: up to 3, fewer once they took 2 minutes). Treat them as rough orders of "
        "magnitude.",
        "",
    ]
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    """Grouped bars: test HR@10 / NDCG@10, ours (sampled and full; mean over seeds, their standard
    deviation as error bars) and published (sampled)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["models"]
    names = [r["display"] for r in rows]
    x = np.arange(len(rows))

    def spread(r: dict, protocol: str, metric: str) -> float:
        return ((r.get("spread_over_seeds") or {}).get("test") or {}).get(protocol, {}).get(metric, 0.0)

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    for ax, metric in zip(axes, ("hr@10", "ndcg@10"), strict=True):
        ours = [r["test"]["sampled"][metric] for r in rows]
        full = [r["test"]["full"][metric] for r in rows]
        pub = [(r["published_sampled_test"] or {}).get(metric) or np.nan for r in rows]
        ax.bar(x - 0.27, ours, 0.27, yerr=[spread(r, "sampled", metric) for r in rows], label="ours, sampled")
        ax.bar(x, pub, 0.27, label="published, sampled")
        ax.bar(
            x + 0.27, full, 0.27, yerr=[spread(r, "full", metric) for r in rows], label="ours, full ranking"
        )
        ax.set_xticks(x, names, rotation=25, ha="right")
        ax.set_title(f"{report['meta']['dataset']}, test {metric.upper()} (mean over training seeds)")
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


def write_report(rows: list[dict], meta: dict, args: argparse.Namespace, old: dict | None) -> None:
    """leaderboard.json (with the paired tests), .md and .png of `rows`; under --update the rows of `old`
    not re-run are kept in their places."""
    if old is not None:
        fresh = {r["name"]: r for r in rows}
        rows = [fresh.pop(r["name"], r) for r in old["models"]] + list(fresh.values())
    rows = sorted(rows, key=lambda r: ORDER.index(r["name"]) if r["name"] in ORDER else len(ORDER))
    report = {"meta": meta, "models": rows}
    report["paired"] = paired_tests(report, args.out_dir)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "leaderboard.json").write_text(json.dumps(report, indent=2) + "\n")
    write_views(report, args.out_dir)


SAME_SPLIT = ("dataset", "n_users", "n_items", "n_interactions", "seed")


def merge(args: argparse.Namespace) -> None:
    """--merge-from: the rows of other output directories (same data and split) replace or join the rows
    of --out-dir's leaderboard; their per-user files are copied; paired tests and views are rewritten."""
    report = json.loads((args.out_dir / "leaderboard.json").read_text())
    rows, meta, notes = report["models"], report["meta"], []
    for source in args.merge_from:
        other = json.loads((source / "leaderboard.json").read_text())
        if differ := [k for k in SAME_SPLIT if other["meta"][k] != meta[k]]:
            raise SystemExit(f"{source}: another data set or split ({', '.join(differ)})")
        for row in other["models"]:
            for run in row.get("runs", []):
                target = args.out_dir / run["per_user_file"]
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source / run["per_user_file"], target)
        names = [r["name"] for r in other["models"]]
        notes.append(f"rows {', '.join(names)} from `{other['meta']['command']}`")
        fresh = {r["name"]: r for r in other["models"]}
        rows = [fresh.pop(r["name"], r) for r in rows] + list(fresh.values())
        meta["unfinished"] = [n for n in meta.get("unfinished", []) if n not in names]
    meta["command"] = f"{meta['command']}; merged: {'; '.join(notes)}"
    write_report(rows, meta, args, None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default=os.environ.get("NCF_DATA_DIR"), help="default: $NCF_DATA_DIR")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--seed", type=int, default=0, help="seed of the split's evaluation negatives")
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=list(SEEDS),
        help="training seeds of the stochastic models (deterministic models are fitted once)",
    )
    parser.add_argument("--models", nargs="+", default=None, help=f"subset of {ORDER}")
    parser.add_argument("--no-search", action="store_true", help="constructor defaults only")
    parser.add_argument(
        "--chosen-from",
        type=Path,
        default=None,
        help="a leaderboard.json whose chosen configurations (selected on validation) are fitted, the "
        "search not rerun; its validation search records are carried over",
    )
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
        "--merge-from",
        type=Path,
        nargs="+",
        default=None,
        help="fold the rows and per-user files of other output directories of this script (e.g. models run "
        "in parallel on the same split) into --out-dir's leaderboard, replacing rows of the same model",
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="rewrite the .md and .png from an existing leaderboard.json (and its paired tests from the "
        "per-user files)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    if args.render_only:
        path = args.out_dir / "leaderboard.json"
        report = json.loads(path.read_text())
        paired = paired_tests(report, args.out_dir)
        if paired["groups"] and paired != report.get("paired"):
            report["paired"] = paired  # recomputed from the per-user files
            path.write_text(json.dumps(report, indent=2) + "\n")
        write_views(report, args.out_dir)
        return 0
    if args.merge_from:
        merge(args)
        return 0
    if not args.data_dir:
        parser.error("pass --data-dir or set NCF_DATA_DIR")
    args.chosen = None
    if args.chosen_from is not None:
        args.chosen = {r["name"]: r for r in json.loads(args.chosen_from.read_text())["models"]}

    names = [n for n in (args.models or ORDER) if n in MODELS]
    missing = [n for n in (args.models or ORDER) if n not in MODELS]
    if missing:
        logger.warning("not registered, skipped: %s", missing)
    previous = args.out_dir / "leaderboard.json"
    old = json.loads(previous.read_text()) if args.update and previous.exists() else None
    dataset = DataLoader(args.data_dir).load()
    args.published = dataset.name == "ml-1m"  # the published figures are for MovieLens 1M only
    split = leave_one_out(dataset, seed=args.seed)
    evaluator = Evaluator(split, k=10, protocols=("sampled", "full"))

    command = "python bench/leaderboard.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if old is not None:
        command = f"{old['meta']['command']}; then {command}"
    meta = {
        "command": command,
        "dataset": dataset.name,
        "n_users": dataset.n_users,
        "n_items": dataset.n_items,
        "n_interactions": dataset.n_interactions,
        "seed": args.seed,
        "training_seeds": args.seeds,
        "selection": f"validation {SELECTION_METRIC[0]} {SELECTION_METRIC[1]}",
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, shared with other jobs",
        "skipped_unregistered": missing,
    }
    rows = []
    for name in names:
        rows.append(run_model(name, split, evaluator, args))
        # Written after every model, so a long run leaves the finished rows behind.
        meta["unfinished"] = names[len(rows) :]
        write_report(rows, meta, args, old)
    return 0


if __name__ == "__main__":
    sys.exit(main())
