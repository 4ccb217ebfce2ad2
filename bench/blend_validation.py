"""Choose the partner and the weight of `NeuMFBlend` (model/blend.py) on the VALIDATION item only.

For each training seed: fits the default NeuMF, EASE^R and iALS (registered defaults: the leaderboard's
validation choices) on the training part of the leaderboard's split (seed 0), scores every validation
user's row once per member, then evaluates the blend of NeuMF with each partner for every weight of the
grid under both protocols (through `NeuMFBlend` itself, its members replaced by the stored rows). No test
item is scored and there is no refit.

Selection rule (fixed before any result was seen): the goal asks for figures at or above iALS on the
sampled protocol and EASE^R on full ranking, so each (partner, weight) is scored by its WORST relative
margin over the four goal figures, min over {sampled HR@10, sampled NDCG@10} of (blend - iALS) / iALS and
over {full HR@10, full NDCG@10} of (blend - EASE^R) / EASE^R, validation means over the seeds, iALS and
EASE^R being this run's fits (the grid's weight-0 points); the highest margin wins, ties to the larger
weight. The chosen point and each partner's best point are then paired per user (`model.paired`) against
the leaderboard's NeuMF, iALS and EASE^R validation figures (bench/results/leaderboard_per_user/, same
users and candidates, the same training seeds).

    python bench/blend_validation.py --data-dir /work/shared/data/ml-1m --seeds 0

Writes bench/results/blend_validation.json and blend_validation.md (`--stem` names other files, e.g. a check
of the choice on more seeds).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from datetime import UTC, datetime

import numpy as np
from neumf_validation import (  # bench/ on path
    RESULTS,
    flat_per_user,
    leaderboard_split,
    paired_against_leaderboard,
    title,
)

from model.base import Recommender
from model.blend import PARTNER_NAMES, NeuMFBlend
from model.registry import build_model

logger = logging.getLogger("bench.blend_validation")
WEIGHTS = tuple(round(0.1 * i, 1) for i in range(11))
PARTNERS = ("ease", "ials")
GOAL = {"sampled": "ials", "full": "ease"}  # the reference model of each protocol's goal figures
GOAL_KEYS = ("sampled.hr@10", "sampled.ndcg@10", "full.hr@10", "full.ndcg@10")


class StoredRows(Recommender):
    """A fitted model's score rows of a fixed set of users, served back: `score_users` of those users only.

    Args:
        users: (c,) int the stored users; rows: (c, n_items) float32 their scores.
    """

    def __init__(self, users: np.ndarray, rows: np.ndarray) -> None:
        self.position = np.full(int(users.max()) + 1, -1, dtype=np.int64)
        self.position[users] = np.arange(users.shape[0])
        self.rows = rows
        self.n_items = rows.shape[1]

    def fit(self, train, validation=None):
        raise NotImplementedError

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        return self.rows[self.position[np.asarray(user_idx)]]

    def score(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        return self.rows[self.position[np.asarray(user_idx)], np.asarray(item_idx)]


def member_rows(model: Recommender, users: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """(c, n_items) float32 score rows of `users`, scored `chunk` users at a time."""
    return np.concatenate([model.score_users(users[s : s + chunk]) for s in range(0, len(users), chunk)])


def criterion(means: dict[str, float], references: dict[str, dict[str, float]]) -> float:
    """The selection rule: the worst relative margin over the goal figures against their references
    (`references[protocol]` = the validation means of iALS for sampled, EASE^R for full)."""
    return min(
        (means[key] - references[key.split(".")[0]][key]) / references[key.split(".")[0]][key]
        for key in GOAL_KEYS
    )


def run(args: argparse.Namespace) -> dict:
    board, split, evaluator = leaderboard_split(args.data_dir, args.split_seed)
    users = split.validation.user_idx
    per_seed: dict[tuple[str, float], list[dict[str, np.ndarray]]] = {}
    fits = []
    for seed in args.seeds:
        members, seconds = {}, {}
        for name in ("neumf", *PARTNERS):
            options = {"neumf": {"train_config": {"seed": seed}}, "ials": {"seed": seed}}.get(name, {})
            model = build_model(name, **options)
            start = time.perf_counter()
            model.fit(split.train, split.validation)
            seconds[name] = round(time.perf_counter() - start, 1)
            members[name] = StoredRows(users, member_rows(model, users))
            logger.info("seed %d: %s fitted in %.0fs", seed, name, seconds[name])
        fits.append({"seed": seed, "fit_seconds": seconds})
        for partner in PARTNERS:
            for weight in WEIGHTS:
                blend = NeuMFBlend(partner=partner, weight=weight, neumf_scores=args.neumf_scores)
                blend.neumf_, blend.partner_ = members["neumf"], members[partner]
                blend.n_users, blend.n_items = split.train.n_users, split.train.n_items
                _, per_user = evaluator.evaluate_per_user(blend, "validation")
                per_seed.setdefault((partner, weight), []).append(flat_per_user(per_user))
        del members
    mean_per_user = {
        point: {key: np.mean([run[key] for run in runs], axis=0) for key in runs[0]}
        for point, runs in per_seed.items()
    }
    means = {
        point: {k: float(v.mean()) for k, v in arrays.items()} for point, arrays in mean_per_user.items()
    }
    references = {protocol: means[(partner, 0.0)] for protocol, partner in GOAL.items()}
    grid = [
        {
            "partner": p,
            "weight": w,
            "validation_mean": means[p, w],
            "criterion": criterion(means[p, w], references),
        }
        for p, w in means
    ]
    chosen = max(grid, key=lambda g: (g["criterion"], g["weight"]))
    best_of = {
        p: max((g for g in grid if g["partner"] == p), key=lambda g: (g["criterion"], g["weight"]))
        for p in PARTNERS
    }
    compared = []
    for point in [chosen, *(b for b in best_of.values() if b is not chosen)]:
        ours = mean_per_user[point["partner"], point["weight"]]
        against = paired_against_leaderboard(board, users, ours, args.seeds)
        compared.append({"partner": point["partner"], "weight": point["weight"], "against": against})
    return {
        "rule": "max over (partner, weight) of min over the goal figures of the relative validation margin "
        "over iALS (sampled HR@10, NDCG@10) and EASE^R (full HR@10, NDCG@10); ties to the larger weight",
        "seeds": args.seeds,
        "neumf_scores": args.neumf_scores,
        "weights": list(WEIGHTS),
        "chosen": {
            "partner": chosen["partner"],
            "weight": chosen["weight"],
            "criterion": chosen["criterion"],
        },
        "references": {
            p: {"model": GOAL[p], **{k: v for k, v in references[p].items() if k.startswith(p)}} for p in GOAL
        },
        "grid": grid,
        "paired": compared,
        "fits": fits,
        "command": "python bench/blend_validation.py " + " ".join(sys.argv[1:]),
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, shared with other jobs",
    }


def _scores(result: dict) -> str:
    """What of NeuMF the run blended (runs before the option blended probabilities)."""
    return "logits" if result.get("neumf_scores") == "logit" else "probabilities"


def _display(partner: str, weight: float) -> str:
    return f"NeuMF + {PARTNER_NAMES[partner]} (w={weight:g})"


def to_markdown(result: dict) -> str:
    chosen = result["chosen"]
    keys = list(result["grid"][0]["validation_mean"])
    lines = [
        "# NeuMF + linear-model blend: partner and weight chosen on the validation item",
        "",
        f"Written by `bench/blend_validation.py`. Command: `{result['command']}`; generated "
        f"{result['generated']} ({result['machine']}); training seeds {result['seeds']}. ML-1M, the "
        "leaderboard's split (seed 0); members fitted on the training part with their registered defaults "
        "(NeuMF's epochs chosen on validation as usual); validation item only, no test item, no refit. "
        f"Blend: per user, weight x NeuMF's standardised {_scores(result)} + (1 - weight) x the "
        "partner's standardised scores (`model.blend`). Weight 1 is NeuMF, weight 0 the partner, as fitted "
        "in this run.",
        "",
        f"Rule (fixed before the run): {result['rule']}.",
        "",
        f"**Chosen: partner {PARTNER_NAMES[chosen['partner']]}, weight {chosen['weight']:g}** "
        f"(worst relative margin {chosen['criterion']:+.4f}).",
        "",
        "Fit seconds: "
        + "; ".join(
            f"seed {f['seed']}: " + ", ".join(f"{k} {v:.0f}" for k, v in f["fit_seconds"].items())
            for f in result["fits"]
        )
        + ".",
        "",
        "## The grid (validation means over the seeds)",
        "",
        "| partner | weight | " + " | ".join(title(k) for k in keys) + " | worst margin |",
        "|---|---:|" + "---:|" * (len(keys) + 1),
    ]
    for g in result["grid"]:
        mark = "**" if (g["partner"], g["weight"]) == (chosen["partner"], chosen["weight"]) else ""
        cells = " | ".join(f"{g['validation_mean'][k]:.4f}" for k in keys)
        name = f"{mark}{PARTNER_NAMES[g['partner']]}{mark}"
        lines.append(f"| {name} | {g['weight']:g} | {cells} | {g['criterion']:+.4f} |")
    lines += [
        "",
        "## Paired tests against the leaderboard's rows (validation)",
        "",
        "Each cell: the blend's mean per-user figure minus that of the leaderboard row (per-user figures "
        "averaged over the same training seeds; EASE^R has one run), 95% confidence interval, p-values of "
        "the paired t-test / Wilcoxon signed-rank test over the validation users.",
        "",
    ]
    for c in result["paired"]:
        lines += [
            f"### {_display(c['partner'], c['weight'])}",
            "",
            "| figure (validation) | blend | "
            + " | ".join(f"Δ vs {a['display']}" for a in c["against"].values())
            + " |",
            "|---|---:|" + "---|" * len(c["against"]),
        ]
        point = next(g for g in result["grid"] if (g["partner"], g["weight"]) == (c["partner"], c["weight"]))
        for key in keys:
            cells = []
            for a in c["against"].values():
                t = a["tests"][key]
                cells.append(
                    f"{t['mean_difference']:+.4f} [{t['ci_low']:+.4f}, {t['ci_high']:+.4f}]; "
                    f"p {t['t_pvalue']:.2g} / {t['wilcoxon_pvalue']:.2g}"
                )
            lines.append(
                f"| {title(key)} | {point['validation_mean'][key]:.4f} | " + " | ".join(cells) + " |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default=os.environ.get("NCF_DATA_DIR"), help="default: $NCF_DATA_DIR")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds")
    parser.add_argument("--split-seed", type=int, default=0, help="must be the leaderboard's")
    parser.add_argument("--render-only", action="store_true", help="rewrite the .md from the .json")
    parser.add_argument("--stem", default="blend_validation", help="name of the result files")
    parser.add_argument(
        "--neumf-scores", choices=("probability", "logit"), default="probability", help="NeuMFBlend's"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    path = RESULTS / f"{args.stem}.json"
    if not args.render_only:
        if not args.data_dir:
            parser.error("pass --data-dir or set NCF_DATA_DIR")
        path.write_text(json.dumps(run(args), indent=2) + "\n")
    path.with_suffix(".md").write_text(to_markdown(json.loads(path.read_text())))
    logger.info("wrote %s and its .md", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
