"""The README's "results at a glance" table and docs/accuracy.md's leaderboard tables, generated from the
benchmark result files in bench/results/.

    python scripts/render_results.py            # print the README's table
    python scripts/render_results.py --write    # replace the blocks between the markers of both pages

Every figure of the README links to the JSON file it is read from; `tests/test_docs.py` checks that both
pages' blocks equal this script's output, so the pages cannot drift from the results.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
README = ROOT / "README.md"
ACCURACY = ROOT / "docs" / "accuracy.md"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
BOARD_BEGIN, BOARD_END = "<!-- leaderboard:begin -->", "<!-- leaderboard:end -->"

REFIT = "test_refit_on_train_and_validation"


def load(name: str) -> dict | list:
    return json.loads((RESULTS / name).read_text())


def link(text: str, name: str) -> str:
    return f"[{text}](bench/results/{name})"


def pair(metrics: dict) -> str:
    return f"{metrics['hr@10']:.4f} / {metrics['ndcg@10']:.4f}"


def recency(model: dict) -> str:
    weighting = model.get("recency") or {}
    if weighting.get("recent_weight", 1) in (1, None) or not weighting.get("recent_fraction"):
        return ""
    return f", newest {weighting['recent_fraction']:.0%} x{weighting['recent_weight']:g}"


def seeds_label(model: dict) -> str:
    seeds = [s for s in model.get("seeds") or [] if s is not None]
    return f", mean of training seeds {seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else ""


def goal_rows(board: dict, model: str = "neumf", figures: str = REFIT) -> dict[tuple[str, str], dict]:
    """The leaderboard's goal comparisons of `model`'s `figures` runs (refit, or "test": trained on train
    only), by (other model, metric)."""
    goal = (board.get("paired") or {}).get("goal") or []
    return {
        (g["against"], g["metric"]): g
        for g in goal
        if g["figures"] == figures and g.get("model", "neumf") == model
    }


def difference(g: dict) -> str:
    return f"{g['mean_difference']:+.4f} (p {g['t_pvalue']:.2g} / {g['wilcoxon_pvalue']:.2g})"


def rows() -> list[tuple[str, str]]:
    board = load("leaderboard.json")
    models = {m["name"]: m for m in board["models"]}
    neumf = models.pop("neumf")
    blend = models.pop("neumf_blend", None)  # not a baseline
    best_sampled = max(models.values(), key=lambda m: m[REFIT]["sampled"]["hr@10"])
    best_full = max(models.values(), key=lambda m: m[REFIT]["full"]["hr@10"])
    goal = goal_rows(board)
    published = neumf["published_sampled_test"]
    nightly, load_test, containers = load("nightly_run.json"), load("load_test.json"), load("containers.json")
    engines = load("compare_engines.json")
    foldin, extras, endpoints = load("foldin.json"), load("job_extras.json"), load("load_test_endpoints.json")
    chosen = foldin["chosen_on_validation"]
    post = endpoints["gunicorn_2_workers"]["new_user"]
    scale = next(r for r in load("scale.json")["runs"] if r["data"] == "synthetic ml-25m")
    lb = "leaderboard.json"
    # The blend's refit figures when it was refitted, else its figures trained on train only (said so).
    blend_which = REFIT if blend is not None and blend.get(REFIT) else "test"
    blend_label = "" if blend_which == REFIT else " (trained on train only)"
    blend_goal = goal_rows(board, "neumf_blend", blend_which)
    compared = [
        (model, other, protocol, source.get((name, "hr@10")), source.get((name, "ndcg@10")))
        for model, source in (
            ("NeuMF", goal),
            (f"{blend['display']}{blend_label}" if blend else "", blend_goal),
        )
        for name, other, protocol in (("ials", "iALS", "sampled"), ("ease", "EASE^R", "full"))
    ]
    blend_rows = [
        (
            f"{blend['display']}, test HR@10 / NDCG@10, {title}{blend_label}{seeds_label(blend)}",
            link(pair(blend[blend_which][protocol]), lb),
        )
        for protocol, title in (("sampled", "sampled (1 + 99)"), ("full", "full ranking"))
        if blend is not None
    ]
    return [
        (
            f"NeuMF (defaults), test HR@10 / NDCG@10, sampled (1 + 99){seeds_label(neumf)}",
            link(pair(neumf[REFIT]["sampled"]), lb),
        ),
        (
            f"NeuMF (defaults), test HR@10 / NDCG@10, full ranking{seeds_label(neumf)}",
            link(pair(neumf[REFIT]["full"]), lb),
        ),
        *blend_rows,
        (
            f"new user, no retraining: fold-in of their newest liked movies ({chosen}), test, full ranking",
            link(pair(foldin["results"]["test"][chosen]), "foldin.json"),
        ),
        (
            "popular movies for the same users (the fallback), test, full ranking",
            link(pair(foldin["results"]["test"]["popular"]), "foldin.json"),
        ),
        (
            f"best baseline, sampled: {best_sampled['display']}{recency(best_sampled)}",
            link(pair(best_sampled[REFIT]["sampled"]), lb),
        ),
        (
            f"best baseline, full ranking: {best_full['display']}{recency(best_full)}",
            link(pair(best_full[REFIT]["full"]), lb),
        ),
        *(
            (
                f"{model} minus {other}, {protocol}, per user: HR@10 / NDCG@10 difference "
                "(p: paired t-test / Wilcoxon)",
                link(f"{difference(hr)}; {difference(ndcg)}", lb),
            )
            for model, other, protocol, hr, ndcg in compared
            if hr is not None and ndcg is not None
        ),
        (
            "ItemPop (popularity), sampled",
            link(pair(models["itempop"][REFIT]["sampled"]), lb),
        ),
        (
            f"published NeuMF, sampled: {published['source']}",
            link(f"{published['hr@10']:.3f} / {published['ndcg@10']:.3f}", lb),
        ),
        (
            "nightly job on ML-1M (`make run`): wall time, peak memory",
            link(f"{nightly['wall_s']:.0f} s, {nightly['peak_rss_mb'] / 1000:.1f} GB", "nightly_run.json"),
        ),
        (
            "the job's extra outputs (deeper lists, similar movies, history, beyond-accuracy figures)",
            link(
                f"+{extras['extra_seconds']:.1f} s ({100 * extras['extra_share_of_nightly']:.1f}%)",
                "job_extras.json",
            ),
        ),
        (
            "nightly job on synthetic ML-25M-shaped data (162,541 users x 59,047 movies, large-catalogue "
            "profile): wall time, peak memory, scored pairs/s",
            link(
                f"{scale['wall_s'] / 60:.0f} min, {scale['peak_rss_mb'] / 1000:.1f} GB, "
                f"{scale['score_pairs_per_s'] / 1e6:.1f} M",
                "scale.json",
            ),
        ),
        (
            "NumPy engine's training samples/s relative to Keras' (comparison model, idle machine)",
            link(f"{engines['repeat_medians']['ratio']:.2f}x", "compare_engines.json"),
        ),
        (
            "lookup service: requests/s, p99 latency (2 workers, 32 connections)",
            link(
                f"{load_test['summary']['service_requests_per_s']:,.0f} req/s, "
                f"{load_test['summary']['service_p99_ms']:.1f} ms",
                "load_test.json",
            ),
        ),
        (
            "new-user POST: requests/s, p99 latency (2 workers, 32 connections, busy machine)",
            link(f"{post['requests_per_s']:,.0f} req/s, {post['p99_ms']:.1f} ms", "load_test_endpoints.json"),
        ),
        (
            "container images: service, batch",
            link(
                f"{containers['image_mb']['service']:.0f} MB, {containers['image_mb']['batch']:,.0f} MB",
                "containers.json",
            ),
        ),
    ]


def render() -> str:
    lines = [
        "| on MovieLens 1M unless said | figure |",
        "|---|---|",
        *(f"| {what} | {figure} |" for what, figure in rows()),
    ]
    return "\n".join(lines) + "\n"


BOARD_COLUMNS = (
    ("test", "sampled", "sampled HR@10 / NDCG@10"),
    ("test", "full", "full HR@10 / NDCG@10"),
    (REFIT, "sampled", "refit: sampled"),
    (REFIT, "full", "refit: full"),
)
TRAINED_ON = {"test": "train", REFIT: "train + validation"}


def recency_cell(model: dict) -> str:
    """The recency weighting a row used: "newest 10% x4", "off", or "–" for models without the option."""
    if model.get("recency") is None:
        return "–"
    return recency(model).removeprefix(", ") or "off"


def runs_cell(model: dict) -> str:
    seeds = model.get("seeds") or []
    return "1" if seeds == [None] else str(len(seeds))


def render_leaderboard() -> str:
    """docs/accuracy.md's leaderboard block: the test figures of every row (means over training seeds) and
    the goal's paired tests, from leaderboard.json."""
    board = load("leaderboard.json")
    models = board["models"]
    best = {
        (which, protocol): max(m[which][protocol]["ndcg@10"] for m in models if m.get(which))
        for which, protocol, _ in BOARD_COLUMNS
    }

    def cell(model: dict, which: str, protocol: str) -> str:
        if not model.get(which):
            return "–"  # a row run without the refit
        text = pair(model[which][protocol])
        return f"**{text}**" if model[which][protocol]["ndcg@10"] == best[which, protocol] else text

    lines = [
        "| model | recency | runs | "
        + " | ".join(title for _, _, title in BOARD_COLUMNS)
        + " | refit: full Recall@20 / MRR | published (sampled) | fit s |",
        "|---|---|---:|" + "---|" * len(BOARD_COLUMNS) + "---|---|---:|",
    ]
    for m in models:
        published = m.get("published_sampled_test") or {}
        pub = (
            f"{published['hr@10']:.4f} / {published['ndcg@10']:.4f}"
            if published.get("hr@10") is not None
            else "chart only"
            if published
            else "–"
        )
        refit_full = m[REFIT]["full"] if m.get(REFIT) else None
        refit_text = "–" if refit_full is None else f"{refit_full['recall@20']:.4f} / {refit_full['mrr']:.4f}"
        lines.append(
            f"| {m['display']} | {recency_cell(m)} | {runs_cell(m)} | "
            + " | ".join(cell(m, which, protocol) for which, protocol, _ in BOARD_COLUMNS)
            + f" | {refit_text} | {pub} "
            f"| {m['fit_seconds']['median']:.0f} |"
        )
    goal = (board.get("paired") or {}).get("goal") or []
    if goal:
        display = {m["name"]: m["display"] for m in models}
        lines += [
            "",
            "| model | trained on | against | metric | its figure | other | Δ [95% CI] | p (t / Wilcoxon) "
            "| at or above? | difference |",
            "|---|---|---|---|---:|---:|---|---|---|---|",
        ]
        for g in goal:
            lines.append(
                f"| {display[g.get('model', 'neumf')]} | {TRAINED_ON[g['figures']]} "
                f"| {display[g['against']]}, {g['protocol']} "
                f"| {g['metric'].upper()} | {g['model_mean']:.4f} | {g['against_mean']:.4f} "
                f"| {g['mean_difference']:+.4f} [{g['ci_low']:+.4f}, {g['ci_high']:+.4f}] "
                f"| {g['t_pvalue']:.2g} / {g['wilcoxon_pvalue']:.2g} | {'yes' if g['at_or_above'] else 'no'} "
                f"| {g['difference']} |"
            )
    return "\n".join(lines) + "\n"


PAGES = {README: (BEGIN, END, render), ACCURACY: (BOARD_BEGIN, BOARD_END, render_leaderboard)}


def with_block(text: str, block: str, begin: str = BEGIN, end: str = END) -> str:
    head, found_begin, rest = text.partition(begin)
    _, found_end, tail = rest.partition(end)
    if not found_begin or not found_end:
        raise ValueError(f"the page needs the markers {begin} and {end}")
    return f"{head}{begin}\n{block}{end}{tail}"


def block_of(text: str, begin: str = BEGIN, end: str = END) -> str:
    return text.partition(begin)[2].partition(end)[0].removeprefix("\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--write", action="store_true", help="replace the blocks in README.md and accuracy.md"
    )
    args = parser.parse_args()
    if args.write:
        for page, (begin, end, renderer) in PAGES.items():
            page.write_text(with_block(page.read_text(), renderer(), begin, end))
    else:
        sys.stdout.write(render())


if __name__ == "__main__":
    main()
