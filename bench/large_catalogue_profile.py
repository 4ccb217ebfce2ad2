"""How the large-catalogue profile (deploy/profiles/large-catalogue.toml) was chosen: candidate training
settings that fit the night at ML-25M size, each trained on ML-1M's training items and compared on its
validation items (selection-only runs: `evaluate --split validation`, which never touches a test item).

    .venv/bin/python bench/large_catalogue_profile.py --data-dir /work/shared/data/ml-1m \\
        [--outputs DIR]   # DIR: where each candidate's JSON goes (default /tmp/ncf-profiles)
    .venv/bin/python bench/large_catalogue_profile.py --collect DIR   # tabulate earlier outputs only

Every candidate has lazy embedding updates, no pretraining, no refit and the sampled protocol; they differ
in epochs, negatives per positive and learning rate. Writes bench/results/large_catalogue_profile.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parents[1]
COMMON = [
    "--split", "validation", "--protocol", "sampled", "--no-refit",
    "--embedding-updates", "lazy", "--no-pretrain", "--json",
]  # fmt: skip
CANDIDATES = {
    "A": ["--epochs", "2", "--num-negatives", "4"],
    "C": ["--epochs", "1", "--num-negatives", "8"],
    "E": ["--epochs", "2", "--num-negatives", "4", "--learning-rate", "0.005"],
    "F": ["--epochs", "3", "--num-negatives", "2", "--learning-rate", "0.005"],
    "G": ["--epochs", "2", "--num-negatives", "3"],
}


def samples_per_epoch_units(flags: list[str]) -> int:
    """Epochs x (1 + negatives): the training samples of a candidate per weighted positive."""
    epochs = int(flags[flags.index("--epochs") + 1])
    negatives = int(flags[flags.index("--num-negatives") + 1])
    return epochs * (1 + negatives)


def row(name: str, report: dict) -> dict:
    history = report["training"]["history"]
    return {
        "candidate": name,
        "flags": " ".join(CANDIDATES[name]),
        "samples_per_weighted_positive": samples_per_epoch_units(CANDIDATES[name]),
        "val_hr@10": round(report["validation"]["sampled"]["hr@10"], 4),
        "val_ndcg@10": round(report["validation"]["sampled"]["ndcg@10"], 4),
        "per_epoch_val_hr@10": [h.get("val_hr@10") for h in history],
        "fit_seconds": report["step_seconds"]["fit"],
    }


def markdown(result: dict) -> str:
    lines = [
        "# Large-catalogue profile: candidates on ML-1M's validation items",
        "",
        f"`{result['command']}`. Common flags: `{' '.join(COMMON)}`. Selection-only runs (no test item is "
        "read). The fit seconds were taken on a shared 2-core machine (other jobs niced) and only show the "
        "relative cost; the cost that matters is samples per weighted positive (epochs x (1 + negatives)), "
        "which sets the training time at ML-25M size.",
        "",
        "| candidate | flags | samples per positive | val HR@10 | val NDCG@10 | per epoch val HR@10 "
        "| fit s |",
        "|---|---|---:|---:|---:|---|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['candidate']} | `{r['flags']}` | {r['samples_per_weighted_positive']} | "
            f"{r['val_hr@10']} | "
            f"{r['val_ndcg@10']} | {r['per_epoch_val_hr@10']} | {r['fit_seconds']:.0f} |"
        )
    best = max(result["rows"], key=lambda r: r["val_hr@10"])
    lines += ["", f"Highest validation HR@10: {best['candidate']} (`{best['flags']}`).", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default=os.environ.get("NCF_DATA_DIR"))
    parser.add_argument("--outputs", type=Path, default=Path("/tmp/ncf-profiles"))
    parser.add_argument("--collect", type=Path, help="only tabulate the JSON outputs in this folder")
    args = parser.parse_args()
    folder = args.collect or args.outputs
    if not args.collect:
        if not args.data_dir:
            parser.error("--data-dir (or NCF_DATA_DIR) is required")
        folder.mkdir(parents=True, exist_ok=True)
        for name, flags in CANDIDATES.items():
            cmd = [sys.executable, "-m", "batch", "evaluate", "--data-dir", args.data_dir, *COMMON, *flags]
            start = time.perf_counter()
            proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True)
            (folder / f"prof_{name}.json").write_text(proc.stdout)
            print(f"{name}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    rows = [row(name, json.loads((folder / f"prof_{name}.json").read_text())) for name in CANDIDATES]
    result = {
        "command": "python bench/large_catalogue_profile.py --data-dir ML-1M",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "common_flags": COMMON,
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "large_catalogue_profile.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "large_catalogue_profile.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
