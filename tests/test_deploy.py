"""Static checks of the container and scheduling files: Dockerfile targets, pinned requirements, compose,
crontab and Kubernetes manifests agree with each other (images, probes, schedule, volumes).

Fast and offline: nothing is built here (`make container-test` builds and runs the images).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
IMAGE = "ncf-recommender"
CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))


def dockerfile_stages() -> dict[str, list[str]]:
    """Instructions (continuation lines joined, comments dropped) of each named stage of the Dockerfile;
    the instructions before the first FROM under the key ``""``."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.replace("\\\n", " ").splitlines() if line.strip()]
    stages: dict[str, list[str]] = {"": []}
    current = ""
    for line in (line.strip() for line in lines if not line.lstrip().startswith("#")):
        match = re.match(r"FROM\s+\S+\s+AS\s+(\S+)$", line, flags=re.IGNORECASE)
        if line.upper().startswith("FROM"):
            assert match, f"unnamed stage: {line}"
            current = match.group(1)
            stages[current] = []
        stages[current].append(line)
    return stages


def instruction(stage: list[str], keyword: str) -> list[str]:
    return [line[len(keyword) :].strip() for line in stage if line.upper().startswith(keyword + " ")]


def load_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def k8s_objects() -> dict[str, dict]:
    """Every object of the kustomization's resources, keyed `Kind/name`."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    objects = {}
    for resource in kustomization["resources"]:
        for doc in load_all(K8S / resource):
            objects[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return objects


def image_target(image: str) -> str:
    """The Dockerfile target an image reference names: `ncf-recommender:<target>`."""
    name, _, tag = image.rpartition(":")
    assert name.rsplit("/", 1)[-1] == IMAGE, image
    return tag


def crontab_entries() -> list[str]:
    lines = (DEPLOY / "crontab").read_text().splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def valid_cron_field(field: str, low: int, high: int) -> bool:
    for part in field.split(","):
        match = re.fullmatch(r"(\*|(\d+)(?:-(\d+))?)(?:/(\d+))?", part)
        if not match:
            return False
        numbers = [int(n) for n in match.groups()[1:3] if n is not None]
        if any(not low <= n <= high for n in numbers) or (len(numbers) == 2 and numbers[0] > numbers[1]):
            return False
        if match.group(4) is not None and int(match.group(4)) == 0:
            return False
    return True


def valid_schedule(schedule: str) -> bool:
    fields = schedule.split()
    return len(fields) == 5 and all(
        valid_cron_field(f, lo, hi) for f, (lo, hi) in zip(fields, CRON_RANGES, strict=True)
    )


def pinned(path: Path) -> dict[str, str]:
    """`{name: version}` of a lock file, asserting every requirement is `name==version` with sha256 hashes."""
    pins = {}
    for line in path.read_text().replace("\\\n", " ").splitlines():
        if line and not line.startswith("#"):
            requirement, *options = line.split()
            name, sep, version = requirement.partition("==")
            assert sep and version, f"{path.name}: not pinned: {line}"
            assert options and all(re.fullmatch(r"--hash=sha256:[0-9a-f]{64}", o) for o in options), line
            pins[canonicalize_name(name)] = version
    return pins


def pip_installs() -> list[str]:
    """Every `pip install` / `pip wheel` command of the Dockerfile's RUN instructions."""
    runs = [line for stage in dockerfile_stages().values() for line in instruction(stage, "RUN")]
    return [
        part.strip() for run in runs for part in run.split("&&") if re.search(r"pip (install|wheel)", part)
    ]


def core_dependencies() -> list[Requirement]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return [Requirement(dep) for dep in pyproject["project"]["dependencies"]]


# ---- Dockerfile ----


def test_dockerfile_has_both_targets_and_a_base_image_argument():
    stages = dockerfile_stages()
    assert {"batch", "service"} <= set(stages)
    assert "BASE_IMAGE=python:3.11-slim" in instruction(stages[""], "ARG")
    parents = [stage[0].split()[1] for name, stage in stages.items() if name]
    assert parents[0] == "${BASE_IMAGE}"
    assert all(parent in stages or parent == "scratch" for parent in parents[1:]), parents


def test_batch_target_runs_the_job_as_non_root():
    batch = dockerfile_stages()["batch"]
    assert instruction(batch, "ENTRYPOINT") == ['["ncf-batch"]']
    assert instruction(batch, "CMD") == ['["run"]']
    assert instruction(batch, "USER") and not instruction(batch, "USER")[-1].startswith(("0", "root"))
    assert '"/data"' in instruction(batch, "VOLUME")[0] and '"/output"' in instruction(batch, "VOLUME")[0]


def test_batch_target_has_the_native_runtime_of_every_model_and_imports_them():
    # implicit (iALS, BPR) links against libgomp, which slim Debian images lack; the job loads every
    # model's settings at start, so without it even `ncf-batch run --help` fails in the image.
    runs = " ".join(instruction(dockerfile_stages()["batch"], "RUN"))
    assert "libgomp1" in runs and "import batch.cli, batch.job, model.als, model.bpr" in runs


def test_service_target_has_healthcheck_and_no_tensorflow():
    stages = dockerfile_stages()
    service = stages["service"]
    assert instruction(service, "ENTRYPOINT") == ['["ncf-serve"]']
    (healthcheck,) = instruction(service, "HEALTHCHECK")
    assert "ncf-healthcheck" in healthcheck
    assert instruction(service, "USER") and not instruction(service, "USER")[-1].startswith(("0", "root"))
    copied = " ".join(instruction(stages["service-build"], "COPY"))
    assert "requirements/service.txt" in copied and "batch.txt" not in copied


def test_runtime_environment_and_installs_without_cache():
    stages = dockerfile_stages()
    env = " ".join(instruction(stages["runtime"], "ENV"))
    assert "NCF_DATA_DIR=/data" in env and "NCF_OUTPUT_DIR=/output" in env
    installs = pip_installs()
    assert installs and all("--no-cache-dir" in part for part in installs)


def test_every_pip_download_is_hash_checked():
    """Requirement files install with --require-hashes, wheels only; the project's own wheel is built and
    installed without the index (so pip fetches nothing unhashed, build tools included)."""
    installs = pip_installs()
    from_files = [part for part in installs if "--requirement" in part]
    assert {part.split()[-1] for part in from_files} == {"/tmp/build.txt", "/tmp/requirements.txt"}
    for part in installs:
        if "--requirement" in part:
            assert "--require-hashes" in part and "--only-binary=:all:" in part, part
        else:
            assert "--no-index" in part and "--no-deps" in part, part
    (wheel,) = [part for part in installs if "pip wheel" in part]
    assert "--no-build-isolation" in wheel
    copied = {
        copy.split()[0] for stage in dockerfile_stages().values() for copy in instruction(stage, "COPY")
    }
    assert {"requirements/batch.txt", "requirements/service.txt", "requirements/build.txt"} <= copied


def test_dockerfile_documents_pinning_the_base_image_by_digest():
    comments = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("#")]
    assert any("BASE_IMAGE=python:3.11-slim@sha256:<digest>" in line for line in comments)
    (default,) = [arg for arg in instruction(dockerfile_stages()[""], "ARG") if arg.startswith("BASE_IMAGE=")]
    assert re.fullmatch(r"BASE_IMAGE=python:3\.11-slim(@sha256:[0-9a-f]{64})?", default), default


def test_dockerfile_copies_only_files_that_exist_and_are_not_ignored():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip()} - {
        ""
    }
    assert {".git", ".venv", "data", "output"} <= ignored
    for stage in dockerfile_stages().values():
        for copy in instruction(stage, "COPY"):
            if copy.startswith("--from"):
                continue
            *sources, _ = copy.split()
            for source in sources:
                assert (ROOT / source).exists(), source
                assert source.split("/")[0] not in ignored, f"{source} is in .dockerignore"


# ---- pinned requirements ----


def test_requirement_files_are_pinned_and_the_service_has_no_tensorflow():
    service = pinned(ROOT / "requirements" / "service.txt")
    batch = pinned(ROOT / "requirements" / "batch.txt")
    assert not {name for name in service if "tensorflow" in name or name in {"keras", "scipy"}}
    assert "tensorflow-cpu" in batch
    for name, version in service.items():
        assert batch.get(name) == version, f"{name}: service {version} != batch {batch.get(name)}"


def test_batch_pins_satisfy_the_project_dependencies():
    batch = pinned(ROOT / "requirements" / "batch.txt")
    for req in core_dependencies():
        name = canonicalize_name(req.name)
        assert name in batch, f"{name} missing from requirements/batch.txt: run make lock"
        assert req.specifier.contains(batch[name]), f"{name}=={batch[name]} outside {req.specifier}"


def test_build_pins_satisfy_the_build_system_requirements():
    build = pinned(ROOT / "requirements" / "build.txt")
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    for req in map(Requirement, requires):
        name = canonicalize_name(req.name)
        assert name in build and req.specifier.contains(build[name]), (
            f"{req}: build.txt has {build.get(name)}"
        )


def test_service_roots_are_project_dependencies():
    names = {canonicalize_name(req.name) for req in core_dependencies()}
    lines = (ROOT / "requirements" / "service.in").read_text().splitlines()
    roots = {canonicalize_name(line.split("#")[0].strip()) for line in lines if line.split("#")[0].strip()}
    assert roots and roots <= names
    assert roots <= set(pinned(ROOT / "requirements" / "service.txt"))


# ---- compose ----


def test_compose_builds_the_dockerfile_targets_and_shares_the_output_volume():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    targets = set(dockerfile_stages())
    for name in ("batch", "service"):
        assert services[name]["build"]["target"] == name and name in targets
        assert image_target(services[name]["image"]) == name
    assert services["batch"]["restart"] == "no"
    assert services["batch"]["command"] == ["run"]
    outputs = {name: [v for v in services[name]["volumes"] if ":/output" in v] for name in services}
    assert outputs["batch"] == ["ncf-output:/output"]
    assert outputs["service"] == ["ncf-output:/output:ro"]
    assert "ncf-output" in compose["volumes"]


def test_compose_publishes_on_loopback_and_confines_both_containers():
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    (port,) = services["service"]["ports"]
    assert port.startswith("${NCF_PUBLISH_ADDR:-127.0.0.1}:"), port
    for name, service in services.items():
        assert service["read_only"] is True, name
        assert "/tmp" in service["tmpfs"], name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name


# ---- crontab ----


def test_crontab_runs_the_batch_image_nightly_without_overlap():
    (entry,) = crontab_entries()
    fields = entry.split()
    assert valid_schedule(" ".join(fields[:5]))
    command = " ".join(fields[5:])
    assert "docker run --rm" in command and "flock -n" in command
    images = [word for word in fields if word.startswith(f"{IMAGE}:")]
    assert [image_target(image) for image in images] == ["batch"]
    assert ":/data:ro" in command and ":/output" in command


@pytest.mark.parametrize(
    ("schedule", "ok"),
    [("0 2 * * *", True), ("*/15 0-6 1,15 * 1-5", True), ("60 2 * * *", False), ("0 2 * *", False)],
)
def test_cron_schedule_validator(schedule, ok):
    assert valid_schedule(schedule) is ok


# ---- Kubernetes ----


def test_cronjob_forbids_concurrency_and_matches_the_crontab():
    cronjob = k8s_objects()["CronJob/ncf-batch"]
    spec = cronjob["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert valid_schedule(spec["schedule"])
    assert spec["schedule"] == " ".join(crontab_entries()[0].split()[:5])
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] in {"Never", "OnFailure"}
    (container,) = pod["containers"]
    assert image_target(container["image"]) == "batch"
    assert container["args"] == ["run"]


def test_deployment_probes_and_service_port():
    objects = k8s_objects()
    pod = objects["Deployment/ncf-service"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert image_target(container["image"]) == "service"
    port_names = {port["name"] for port in container["ports"]}
    readiness, liveness = container["readinessProbe"]["httpGet"], container["livenessProbe"]["httpGet"]
    assert readiness["path"] == "/readyz" and liveness["path"] == "/healthz"
    assert {readiness["port"], liveness["port"]} <= port_names
    env = {item["name"]: item["value"] for item in container["env"]}
    assert int(env["NCF_BIND"].rsplit(":", 1)[1]) in {port["containerPort"] for port in container["ports"]}
    service = objects["Service/ncf-service"]["spec"]
    assert {port["targetPort"] for port in service["ports"]} <= port_names
    labels = objects["Deployment/ncf-service"]["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= labels.items()


def test_batch_and_service_share_the_output_claim():
    objects = k8s_objects()
    pods = {
        "batch": objects["CronJob/ncf-batch"]["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        "service": objects["Deployment/ncf-service"]["spec"]["template"]["spec"],
    }
    claims = {}
    for name, pod in pods.items():
        volumes = {v["name"]: v.get("persistentVolumeClaim", {}).get("claimName") for v in pod["volumes"]}
        (container,) = pod["containers"]
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        claims[name] = volumes[mounts["/output"]["name"]]
        assert pod["securityContext"]["runAsNonRoot"] is True
    assert claims["batch"] == claims["service"]
    assert f"PersistentVolumeClaim/{claims['batch']}" in objects
    assert "ReadWriteMany" in objects[f"PersistentVolumeClaim/{claims['batch']}"]["spec"]["accessModes"]
    service_mounts = {m["mountPath"]: m for m in pods["service"]["containers"][0]["volumeMounts"]}
    assert service_mounts["/output"]["readOnly"] is True


def test_pods_are_locked_down():
    objects = k8s_objects()
    pods = {
        "batch": objects["CronJob/ncf-batch"]["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        "service": objects["Deployment/ncf-service"]["spec"]["template"]["spec"],
    }
    for name, pod in pods.items():
        assert pod["automountServiceAccountToken"] is False, name
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True and context["seccompProfile"] == {"type": "RuntimeDefault"}, (
            name
        )
        (container,) = pod["containers"]
        container_context = container["securityContext"]
        assert container_context["allowPrivilegeEscalation"] is False, name
        assert container_context["readOnlyRootFilesystem"] is True, name
        assert container_context["capabilities"] == {"drop": ["ALL"]}, name
        assert "privileged" not in container_context and "runAsUser" not in container_context, name
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], f"{name}: /tmp must be writable (emptyDir)"


# ---- KubeRay (deploy/ray/rayjob.yaml) ----


def test_batch_pins_the_ray_extra_and_the_service_does_not():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    batch = pinned(ROOT / "requirements" / "batch.txt")
    for req in map(Requirement, pyproject["project"]["optional-dependencies"]["ray"]):
        name = canonicalize_name(req.name)
        assert name in batch and req.specifier.contains(batch[name]), f"{req}: batch.txt {batch.get(name)}"
    assert "ray" not in pinned(ROOT / "requirements" / "service.txt")
    assert "ncf-recommender[ray]" in pyproject["project"]["optional-dependencies"]["dev"]


def test_rayjob_runs_the_batch_image_with_the_ray_executor_on_the_shared_output():
    (job,) = load_all(DEPLOY / "ray" / "rayjob.yaml")
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    entrypoint = spec["entrypoint"].split()
    assert entrypoint[:2] == ["ncf-batch", "run"]
    assert entrypoint[entrypoint.index("--executor") + 1] == "ray"
    assert entrypoint[entrypoint.index("--ray-address") + 1] == "auto"
    assert spec["shutdownAfterJobFinishes"] is True and spec["backoffLimit"] == 0
    cluster = spec["rayClusterSpec"]
    assert cluster["rayVersion"] == pinned(ROOT / "requirements" / "batch.txt")["ray"]
    head = cluster["headGroupSpec"]["template"]["spec"]
    groups = cluster["workerGroupSpecs"]
    pods = {"head": head, **{g["groupName"]: g["template"]["spec"] for g in groups}}
    cronjob = k8s_objects()["CronJob/ncf-batch"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    output_claim = {v["name"]: v.get("persistentVolumeClaim") for v in cronjob["volumes"]}["output"]
    for name, pod in pods.items():
        (container,) = pod["containers"]
        assert image_target(container["image"]) == "batch", name
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert volumes[mounts["/output"]]["persistentVolumeClaim"] == output_claim, name
        assert "emptyDir" in volumes[mounts["/tmp"]] and volumes[mounts["/dev/shm"]]["emptyDir"] == {
            "medium": "Memory"
        }, name
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}, name
    assert "/data" in {m["mountPath"] for m in head["containers"][0]["volumeMounts"]}
    # the actor pool fits the worker group: workers x CPUs per worker <= the group's CPUs
    workers = int(entrypoint[entrypoint.index("--ray-workers") + 1])
    cpus = float(entrypoint[entrypoint.index("--ray-cpus-per-worker") + 1])
    group_cpus = sum(
        g["replicas"] * float(g["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"])
        for g in groups
    )
    assert workers * cpus <= group_cpus
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
