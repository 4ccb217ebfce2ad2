"""The README's "results at a glance" table, generated from the benchmark result files in bench/results/.

    python scripts/render_results.py            # print the table
    python scripts/render_results.py --write    # replace the block between the markers in README.md

Every figure links to the JSON file it is read from; `tests/test_docs.py` checks that the README's block
equals this script's output, so the README cannot drift from the results.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
README = ROOT / "README.md"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"

# neumf_accuracy.json rows of the current defaults, one per training seed (bench/run_accuracy.sh names)
DEFAULTS_RUNS = ("recency_defaults", "recency_defaults_train_seed1", "recency_defaults_train_seed2")
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


def rows() -> list[tuple[str, str]]:
    board = load("leaderboard.json")
    models = {m["name"]: m for m in board["models"]}
    neumf = models.pop("neumf")
    best_sampled = max(models.values(), key=lambda m: m[REFIT]["sampled"]["hr@10"])
    best_full = max(models.values(), key=lambda m: m[REFIT]["full"]["hr@10"])
    accuracy = {r["name"]: r for r in load("neumf_accuracy.json")}
    seeds = [accuracy[name] for name in DEFAULTS_RUNS]
    mean = {k: sum(r[f"test_{k}"] for r in seeds) / len(seeds) for k in ("hr@10", "ndcg@10")}
    published = neumf["published_sampled_test"]
    nightly, load_test, containers = load("nightly_run.json"), load("load_test.json"), load("containers.json")
    engines = load("compare_engines.json")
    foldin, extras, endpoints = load("foldin.json"), load("job_extras.json"), load("load_test_endpoints.json")
    chosen = foldin["chosen_on_validation"]
    post = endpoints["gunicorn_2_workers"]["new_user"]
    scale = next(r for r in load("scale.json")["runs"] if r["data"] == "synthetic ml-25m")
    lb, acc = "leaderboard.json", "neumf_accuracy.json"
    return [
        (
            "NeuMF (defaults), test HR@10 / NDCG@10, sampled (1 + 99)",
            link(pair(neumf[REFIT]["sampled"]), lb),
        ),
        (
            f"same, mean of training seeds 0-{len(seeds) - 1}",
            link(pair(mean), acc),
        ),
        (
            "NeuMF (defaults), test HR@10 / NDCG@10, full ranking",
            link(pair(neumf[REFIT]["full"]), lb),
        ),
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
            "profile, before the outputs beyond the top-N lists): wall time, peak memory, scored pairs/s",
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


def with_block(text: str, block: str) -> str:
    head, begin, rest = text.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise ValueError(f"README.md needs the markers {BEGIN} and {END}")
    return f"{head}{BEGIN}\n{block}{END}{tail}"


def block_of(text: str) -> str:
    return text.partition(BEGIN)[2].partition(END)[0].removeprefix("\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="replace the block in README.md")
    args = parser.parse_args()
    if args.write:
        README.write_text(with_block(README.read_text(), render()))
    else:
        sys.stdout.write(render())


if __name__ == "__main__":
    main()
