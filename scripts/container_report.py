"""Write bench/results/containers.{json,md} from the figures `scripts/container_test.sh` measured.

Called by that script only: `--sizes batch=<bytes> service=<bytes> base=<bytes> --seconds name=<s> ...`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

SERVICE_TARGET_MB = 300
COMMAND = "make container-test (as root; = bash scripts/container_test.sh)"
SECONDS_LABELS = {
    "base_image_build": "base image: debootstrap bookworm + podman import",
    "service_build": "podman build --target service",
    "batch_build": "podman build --target batch",
    "batch_run": "batch image: ncf-batch run on ML-100K (chroot)",
    "service_ready": "service image: ncf-serve start until /readyz answers",
    "total": "the whole script (builds, exports, checks)",
}


def pairs(values: list[str], cast: type) -> dict:
    """`["a=1", "b=2"]` -> `{"a": cast("1"), "b": cast("2")}`."""
    return {key: cast(value) for key, _, value in (item.partition("=") for item in values)}


def podman_version() -> str:
    try:
        return subprocess.run(
            ["podman", "--version"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def markdown(report: dict) -> str:
    mb = report["image_mb"]
    lines = [
        "# Container images: sizes and build times",
        "",
        f"Measured {report['measured_at']} by `{report['command']}` on a shared, noisy 2-core machine",
        "(other jobs were building and testing at the same time: times are single runs, not medians).",
        f"Base image: `{report['base_image']}` ({report['podman']}, `podman build --isolation=chroot`).",
        f"Batch job in the batch image: `{report['batch_command']}`; published run `{report['run_id']}`,",
        f"its test metrics (ML-100K, leave-one-out): `{json.dumps(report['run_test_metrics'])}`.",
        "",
        "| image | size (MB) | of which above the base (MB) |",
        "|---|---|---|",
        f"| base | {mb['base']} | - |",
    ]
    lines += [f"| {name} | {mb[name]} | {round(mb[name] - mb['base'], 1)} |" for name in ("batch", "service")]
    verdict = "met" if mb["service"] <= SERVICE_TARGET_MB else "NOT met"
    lines += ["", f"Service image target <= {SERVICE_TARGET_MB} MB: {verdict} ({mb['service']} MB).", ""]
    lines += ["| step | seconds |", "|---|---|"]
    lines += [
        f"| {SECONDS_LABELS.get(name, name)} | {seconds} |"
        for name, seconds in sorted(report["seconds"].items())
    ]
    lines += [
        "",
        "Sizes: podman's uncompressed image sizes (`podman image inspect`), MB = 10^6 B.",
        "A build time includes downloading the wheels from the package index (no pip cache in the images).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", required=True)
    parser.add_argument("--seconds", nargs="*", default=[])
    parser.add_argument("--base-image", required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--batch-command", required=True)
    parser.add_argument("--metrics", type=Path, required=True, help="metrics.json of the published run")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    sizes = pairs(args.sizes, int)
    report = {
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": COMMAND,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "shared": True},
        "podman": podman_version(),
        "base_image": args.base_image,
        "batch_command": args.batch_command.strip(),
        "run_id": args.run_id,
        "image_bytes": sizes,
        "image_mb": {name: round(size / 1e6, 1) for name, size in sizes.items()},
        "service_target_mb": SERVICE_TARGET_MB,
        "seconds": pairs(args.seconds, float),
        "run_test_metrics": json.loads(args.metrics.read_text()).get("test"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "containers.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "containers.md").write_text(markdown(report))


if __name__ == "__main__":
    main()
