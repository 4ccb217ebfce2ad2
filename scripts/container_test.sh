#!/usr/bin/env bash
# Build both images from the Dockerfile with podman and exercise them without a container runtime.
#
# Works on a machine with no Docker engine and no registry for base images (this project's machines):
#  1. installs podman and debootstrap with apt-get if they are missing (needs root);
#  2. builds a base image: debootstrap a minimal Debian bookworm with python3 + python3-venv from the
#     machine's Debian mirror, tar it, `podman import` it (cached: skipped when the image exists);
#  3. `podman build --isolation=chroot --build-arg BASE_IMAGE=<that> --target batch|service`;
#  4. exports each image's filesystem (`podman create` + `podman export | tar -x`) and, with `chroot` as the
#     image's user and environment, runs the batch image's ENTRYPOINT + CMD on ML-100K into /output, then
#     starts the service image's ENTRYPOINT on that output on a loopback port, waits for /healthz and
#     /readyz, asks for a user's recommendations, runs the image's HEALTHCHECK command, and checks that
#     the service image holds no TensorFlow;
#  5. writes image sizes and build/run times to bench/results/containers.{json,md}.
#
# Settings (environment): NCF_DATA_DIR_100K (ML-100K, default ../shared/data/ml-100k), NCF_CONTAINER_WORK
# (scratch, default /tmp/ncf-container-test), NCF_BASE_IMAGE (skip step 2 and use this image),
# NCF_REBUILD_BASE=1 (rebuild the cached base), NCF_BATCH_ENV (extra KEY=VALUE settings of the batch job,
# e.g. "NCF_MODEL=itempop NCF_GATE__DEFAULT_FLOOR=0" for a quick run; default none: the image's CMD as shipped),
# NCF_TEST_PORT (default 18080), NCF_CLEANUP=1 (remove the built images afterwards; the base stays).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${NCF_CONTAINER_WORK:-/tmp/ncf-container-test}
DATA=${NCF_DATA_DIR_100K:-$ROOT/../shared/data/ml-100k}
PORT=${NCF_TEST_PORT:-18080}
PIP_CA=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
BASE_TAG=localhost/ncf-base:bookworm
IMAGE=localhost/ncf-recommender
RESULTS=$ROOT/bench/results
declare -A SECONDS_OF=()
MOUNTED=()
SERVER_PID=""

log() { printf '[container-test %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    local i
    for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do umount "${MOUNTED[i]}" 2>/dev/null || true; done
}
trap cleanup EXIT

timed() { # timed NAME CMD...: run CMD, record its wall seconds under NAME
    local name=$1 start end
    shift
    start=$(date +%s.%N)
    "$@"
    end=$(date +%s.%N)
    SECONDS_OF[$name]=$(python3 -c "print(round($end - $start, 1))")
    log "$name took ${SECONDS_OF[$name]} s"
}

need_tools() {
    command -v podman >/dev/null && command -v debootstrap >/dev/null && return
    [ "$(id -u)" = 0 ] || die "podman and debootstrap are missing and I am not root to apt-get them"
    log "installing podman and debootstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman debootstrap >/dev/null
}

debian_mirror() { # the first Debian mirror apt already uses (deb822 or one-line sources)
    local uri
    uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | grep -Eo 'https?://[^ ]*/debian/?( |$)' | grep -v security | head -n1 | tr -d ' ' || true)
    echo "${uri:-http://deb.debian.org/debian}"
}

build_base() {
    local rootfs=$WORK/base-rootfs
    rm -rf "$rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$rootfs" "$(debian_mirror)" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -n 20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
    tar -C "$rootfs" -c . | podman import --quiet --change 'CMD ["python3"]' - "$BASE_TAG" >/dev/null
    rm -rf "$rootfs"
}

build_target() { # build_target TARGET (docker format: OCI images drop HEALTHCHECK)
    local -a secret=()
    # The host's CA bundle lets pip in the build trust what the host trusts (e.g. a TLS-inspecting proxy).
    [ -f "$PIP_CA" ] && secret=(--secret "id=pip_ca,src=$PIP_CA")
    podman build --format docker --isolation=chroot "${secret[@]}" --build-arg "BASE_IMAGE=$BASE" \
        --target "$1" -t "$IMAGE:$1" -f "$ROOT/Dockerfile" "$ROOT" >"$WORK/build-$1.log" 2>&1 \
        || { tail -n 30 "$WORK/build-$1.log" >&2; die "podman build --target $1 failed"; }
}

export_image() { # export_image TARGET DIR
    local cid
    rm -rf "$2" && mkdir -p "$2"
    cid=$(podman create "$IMAGE:$1")
    podman export "$cid" | tar -x -C "$2"
    podman rm "$cid" >/dev/null
    mount -t proc proc "$2/proc" && MOUNTED+=("$2/proc")
    mount --bind /dev "$2/dev" && MOUNTED+=("$2/dev")
}

inspect() { podman image inspect --format "$2" "$IMAGE:$1"; }

image_command() { # image_command TARGET DIR: set AS_IMAGE to the prefix that runs a command in DIR as the
    # image's user with only the image's environment (chroot; `podman run` does not work here)
    local target=$1 dir=$2 user
    user=$(inspect "$target" '{{.Config.User}}')
    [[ $user == *:* ]] || user="$user:$user"
    local -a envs
    mapfile -t envs < <(inspect "$target" '{{range .Config.Env}}{{println .}}{{end}}' | sed '/^$/d')
    AS_IMAGE=(env -i "${envs[@]}" HOME=/tmp chroot --userspec="$user" "$dir")
}

as_image() { # as_image TARGET DIR CMD...: run CMD in the image's filesystem DIR (see image_command)
    image_command "$1" "$2"
    shift 2
    "${AS_IMAGE[@]}" "$@"
}

json_words() { python3 -c 'import json,sys; print(" ".join(json.loads(sys.stdin.read()) or []))'; }

mkdir -p "$WORK" "$RESULTS"
[ -f "$DATA/u.data" ] || die "ML-100K not found at $DATA (set NCF_DATA_DIR_100K)"
need_tools

BASE=${NCF_BASE_IMAGE:-$BASE_TAG}
if [ -z "${NCF_BASE_IMAGE:-}" ] && { [ "${NCF_REBUILD_BASE:-0}" = 1 ] || ! podman image exists "$BASE_TAG"; }; then
    log "building the base image $BASE_TAG (debootstrap bookworm from $(debian_mirror))"
    timed base_image_build build_base
fi

log "building target service"
timed service_build build_target service
log "building target batch"
timed batch_build build_target batch

for target in batch service; do
    user=$(inspect "$target" '{{.Config.User}}')
    [[ -n $user && $user != root* && $user != 0 && $user != 0:* ]] || die "$target image runs as root ($user)"
done

BATCH_FS=$WORK/fs-batch
SERVICE_FS=$WORK/fs-service
log "exporting the images' filesystems"
export_image batch "$BATCH_FS"
export_image service "$SERVICE_FS"

log "the service image must not contain TensorFlow"
if find "$SERVICE_FS/opt" "$SERVICE_FS/usr" -maxdepth 6 -iname 'tensorflow*' | grep -q .; then
    die "TensorFlow files found in the service image"
fi
as_image service "$SERVICE_FS" python3 -c \
    'import importlib.util as u, sys; sys.exit(u.find_spec("tensorflow") is not None)' \
    || die "tensorflow is importable in the service image"
as_image batch "$BATCH_FS" python3 -c 'import tensorflow' >/dev/null 2>&1 || die "TensorFlow missing from the batch image"

log "batch image: ENTRYPOINT + CMD on ML-100K into /output"
mkdir -p "$BATCH_FS/data"
mount --bind "$DATA" "$BATCH_FS/data" && MOUNTED+=("$BATCH_FS/data")
mount -o remount,bind,ro "$BATCH_FS/data"
rm -rf "${BATCH_FS:?}/output" && mkdir -p "$BATCH_FS/output" && chown 10001:10001 "$BATCH_FS/output"
read -r -a entrypoint <<<"$(inspect batch '{{json .Config.Entrypoint}}' | json_words)"
read -r -a command <<<"$(inspect batch '{{json .Config.Cmd}}' | json_words)"
read -r -a batch_env <<<"${NCF_BATCH_ENV:-}"
BATCH_COMMAND="${batch_env[*]} ${entrypoint[*]} ${command[*]}"
log "running: $BATCH_COMMAND"
timed batch_run as_image batch "$BATCH_FS" env "${batch_env[@]}" "${entrypoint[@]}" "${command[@]}" \
    >"$WORK/batch-run.log" 2>&1 || { tail -n 30 "$WORK/batch-run.log" >&2; die "the batch job failed in the batch image"; }
[ -s "$BATCH_FS/output/LATEST" ] || die "the batch job published nothing (no /output/LATEST)"
RUN_ID=$(cat "$BATCH_FS/output/LATEST")
log "published run $RUN_ID"

log "service image: ENTRYPOINT on that output, port $PORT on loopback"
rm -rf "${SERVICE_FS:?}/output" && cp -a "$BATCH_FS/output" "$SERVICE_FS/output"
read -r -a entrypoint <<<"$(inspect service '{{json .Config.Entrypoint}}' | json_words)"
read -r -a command <<<"$(inspect service '{{json .Config.Cmd}}' | json_words)"
if curl -s -o /dev/null "http://127.0.0.1:$PORT/"; then die "port $PORT is already in use (NCF_TEST_PORT)"; fi
image_command service "$SERVICE_FS"
# exec all the way down (env, chroot, env, ncf-serve execs gunicorn): SERVER_PID is gunicorn's master
(exec "${AS_IMAGE[@]}" env NCF_BIND="127.0.0.1:$PORT" NCF_WORKERS=1 "${entrypoint[@]}" "${command[@]}" \
    >"$WORK/service.log" 2>&1) &
SERVER_PID=$!
start=$(date +%s.%N)
ready=""
for _ in $(seq 1 120); do
    if curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then ready=1; break; fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.5
done
[ -n "$ready" ] || { tail -n 30 "$WORK/service.log" >&2; die "the service never became ready"; }
SECONDS_OF[service_ready]=$(python3 -c "print(round($(date +%s.%N) - $start, 1))")
curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null || die "/healthz failed"
USER_ID=$(as_image batch "$BATCH_FS" python3 -c "import pyarrow.parquet as pq, sys; \
print(pq.read_table(sys.argv[1], columns=['user_id']).column(0)[0].as_py())" \
    "/output/runs/$RUN_ID/recommendations.parquet")
curl -fsS "http://127.0.0.1:$PORT/v1/users/$USER_ID/recommendations?n=5" >"$WORK/answer.json" \
    || die "no answer for /v1/users/$USER_ID/recommendations"
python3 - "$WORK/answer.json" "$RUN_ID" <<'EOF' || die "unexpected answer: $(head -c 400 "$WORK/answer.json")"
import json, sys
answer = json.load(open(sys.argv[1]))
items = answer["recommendations"]
assert len(items) == 5 and answer["run_id"] == sys.argv[2] and answer["source"] == "model", answer
print(json.dumps(items[0]), file=sys.stderr)
EOF
read -r -a healthcheck <<<"$(inspect service '{{json .Config.Healthcheck.Test}}' | json_words)"
[ "${healthcheck[0]}" = CMD ] || die "unexpected HEALTHCHECK form: ${healthcheck[*]}"
as_image service "$SERVICE_FS" env NCF_BIND="127.0.0.1:$PORT" "${healthcheck[@]:1}" || die "HEALTHCHECK failed"
kill "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=""
if curl -s -o /dev/null "http://127.0.0.1:$PORT/"; then die "the service still answers after SIGTERM"; fi
log "service answered; HEALTHCHECK passed"

SIZES=$(for target in batch service; do printf '%s=%s ' "$target" "$(inspect "$target" '{{.Size}}')"; done)
BASE_SIZE=$(podman image inspect --format '{{.Size}}' "$BASE")
SECONDS_OF[total]=$SECONDS
TIMES=$(for k in "${!SECONDS_OF[@]}"; do printf '%s=%s ' "$k" "${SECONDS_OF[$k]}"; done)
python3 "$ROOT/scripts/container_report.py" --sizes $SIZES "base=$BASE_SIZE" --seconds $TIMES \
    --base-image "$BASE" --run-id "$RUN_ID" --batch-command "$BATCH_COMMAND" \
    --metrics "$BATCH_FS/output/runs/$RUN_ID/metrics.json" --out "$RESULTS"
if [ "${NCF_CLEANUP:-0}" = 1 ]; then
    cleanup
    MOUNTED=()
    rm -rf "$BATCH_FS" "$SERVICE_FS"
    podman rmi "$IMAGE:batch" "$IMAGE:service" >/dev/null
    podman image prune -f >/dev/null
fi
log "PASS"
