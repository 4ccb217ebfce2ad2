"""A cost model on paper: the nightly job at ML-25M, 10 M users x 100 K movies and 100 M users x 1 M
movies, extrapolated linearly from measured throughputs in bench/results/ (no figure is typed by hand):

- scoring: pairs per CPU-second of the Keras engine's structured scorer + top-N with the default NeuMF
  architecture on ML-1M (`score_all.json`, `keras_score_users_and_top_n`: pairs / CPU seconds);
- training: samples per CPU-second of the Keras training loop at batch 8192 (`train_speed.json`, a small
  NeuMF, 8 factors [64,32,16,8]; the default architecture is heavier, so training figures are a lower
  bound), times (1 + `num_negatives`) x `epochs` of the default `TrainConfig`;
- output: bytes per row of recommendations.parquet and of the served arrays, and per user, from the
  ML-25M-shaped run of `lookup_scale.json`, for the job's per-user lists: `top_n` rows of recommendations
  and `candidates` rows of candidates per user in Parquet, the served arrays `candidates` deep (the
  similar-movie and history tables are left out: K rows per movie and 10 per user);
- model: the default architecture's embedding tables (users + movies) x (factors + layers[0] / 2) float32,
  x 3 with Adam's two moments while training.

Ratings per user are assumed 100 for the two synthetic shapes (ML-25M: its real count). A worker is one
CPU core; wall time on N workers = CPU hours / N (no overheads: start-up, stragglers, I/O).

    .venv/bin/python bench/cost_model.py

Writes bench/results/cost_model.{json,md} and the table between the markers of docs/scaling.md.
"""

from __future__ import annotations

import json
from pathlib import Path

from batch.settings import RunSettings
from model.ncf.config import NCFConfig, TrainConfig

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "scaling.md"
BEGIN, END = "<!-- cost:begin -->", "<!-- cost:end -->"
TOP_N = RunSettings.model_fields["top_n"].default
DEPTH = RunSettings.model_fields["candidates"].default
WORKERS = (1, 16, 128, 1024)
NIGHT_HOURS = 4.0  # the nightly window the job must fit in
MACHINE_CORES = 64  # one large machine
MACHINE_MEMORY_GB = 256
SHAPES = {  # name: (users, movies, ratings)
    "ML-25M": (162_541, 59_047, 25_000_095),
    "10 M users x 100 K movies": (10_000_000, 100_000, 10_000_000 * 100),
    "100 M users x 1 M movies": (100_000_000, 1_000_000, 100_000_000 * 100),
}


def measured() -> dict:
    score = json.loads((RESULTS / "score_all.json").read_text())
    keras = score["timings"]["keras_score_users_and_top_n"]
    train = json.loads((RESULTS / "train_speed.json").read_text())
    (big,) = [t for t in train["training"] if t["batch_size"] == 8192]
    lookup = json.loads((RESULTS / "lookup_scale.json").read_text())
    files = lookup["run_files_bytes"]["ml-25m"]
    rows, users = 162_541 * 50, 162_541  # lookup_scale.json's ML-25M run: 50 rows per user (its `setup`)
    return {
        "score_pairs_per_cpu_s": score["pairs"] / keras["cpu_median_s"],
        "score_pairs_per_wall_s_2_cores": score["pairs"] / keras["wall_median_s"],
        "train_samples_per_cpu_s": big["samples_per_s_median"] / train["host"]["cpus"],
        "parquet_bytes_per_row": files["recommendations.parquet"] / rows,
        "served_bytes_per_row": (files["serving/movie_pos.npy"] + files["serving/scores.npy"]) / rows,
        "served_bytes_per_user": (files["serving/offsets.npy"] + files["serving/user_ids.npy"]) / users,
    }


def estimate(m: dict) -> list[dict]:
    config, train = NCFConfig(), TrainConfig()
    width = config.factors + config.layers[0] // 2  # embedding floats per user and per movie
    out = []
    for name, (users, movies, ratings) in SHAPES.items():
        pairs = users * movies
        score_h = pairs / m["score_pairs_per_cpu_s"] / 3600
        samples = ratings * (1 + train.num_negatives) * train.epochs
        train_h = samples / m["train_samples_per_cpu_s"] / 3600
        output_gb = (
            users * (TOP_N + DEPTH) * m["parquet_bytes_per_row"]
            + users * DEPTH * m["served_bytes_per_row"]
            + users * m["served_bytes_per_user"]
        ) / 1e9
        tables_gb = (users + movies) * width * 4 / 1e9
        machine_h = (score_h + train_h) / MACHINE_CORES
        out.append(
            {
                "shape": name,
                "users": users,
                "movies": movies,
                "ratings": ratings,
                "pairs": pairs,
                "score_cpu_hours": score_h,
                "train_samples": samples,
                "train_cpu_hours": train_h,
                "wall_hours_on": {n: (score_h + train_h) / n for n in WORKERS},
                "score_wall_hours_on": {n: score_h / n for n in WORKERS},
                "output_gb": output_gb,
                "embedding_tables_gb": tables_gb,
                "training_state_gb": 3 * tables_gb,
                "one_machine_wall_hours": machine_h,
                "one_machine_enough": machine_h <= NIGHT_HOURS and 3 * tables_gb <= MACHINE_MEMORY_GB / 2,
            }
        )
    return out


def fmt(x: float) -> str:
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.2g}" if x < 1 else f"{x:.1f}"


def table(m: dict, rows: list[dict]) -> str:
    head = "| | " + " | ".join(r["shape"] for r in rows) + " |"
    lines = [head, "|---|" + "---:|" * len(rows)]

    def row(label: str, cells: list[str]) -> None:
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    row("users x movies = pairs scored", [f"{r['pairs']:.2e}" for r in rows])
    row("scoring, CPU hours", [fmt(r["score_cpu_hours"]) for r in rows])
    row("training samples (ratings x 9 x 10 epochs)", [f"{r['train_samples']:.2e}" for r in rows])
    row("training, CPU hours (lower bound)", [fmt(r["train_cpu_hours"]) for r in rows])
    for n in WORKERS:
        row(f"wall hours on {n} workers (score + train)", [fmt(r["wall_hours_on"][n]) for r in rows])
    row(
        f"output, GB (top {TOP_N} and {DEPTH} candidates in Parquet, served arrays {DEPTH} deep)",
        [fmt(r["output_gb"]) for r in rows],
    )
    row("embedding tables, GB (float32)", [fmt(r["embedding_tables_gb"]) for r in rows])
    row("training state with Adam, GB", [fmt(r["training_state_gb"]) for r in rows])
    row(
        f"one {MACHINE_CORES}-core, {MACHINE_MEMORY_GB} GB machine: wall hours",
        [fmt(r["one_machine_wall_hours"]) for r in rows],
    )
    row(
        f"one machine enough? (<= {NIGHT_HOURS:g} h, state <= half its memory)",
        ["yes" if r["one_machine_enough"] else "**no**" for r in rows],
    )
    inputs = (
        f"Inputs: scoring {m['score_pairs_per_cpu_s']:,.0f} pairs per CPU-second "
        f"([score_all.json](score_all.json)); training {m['train_samples_per_cpu_s']:,.0f} samples per "
        f"CPU-second ([train_speed.json](train_speed.json), small NeuMF); output "
        f"{m['parquet_bytes_per_row']:.1f} + {m['served_bytes_per_row']:.1f} bytes per row and "
        f"{m['served_bytes_per_user']:.1f} per user ([lookup_scale.json](lookup_scale.json))."
    )
    return "\n".join([*lines, "", inputs])


def main() -> None:
    m = measured()
    rows = estimate(m)
    text = table(m, rows)
    (RESULTS / "cost_model.json").write_text(json.dumps({"measured": m, "estimates": rows}, indent=2) + "\n")
    (RESULTS / "cost_model.md").write_text(
        "# Cost model of the nightly job (generated by bench/cost_model.py)\n\n" + text + "\n"
    )
    doc = DOC.read_text()
    start, end = doc.index(BEGIN) + len(BEGIN), doc.index(END)
    DOC.write_text(doc[:start] + "\n" + text.replace("](", "](../bench/results/") + "\n" + doc[end:])
    print(text)


if __name__ == "__main__":
    main()
