# Two images from one file (see README "Containers"):
#   docker build --target batch   -t ncf-recommender:batch .    # nightly job, TensorFlow CPU, `ncf-batch run`
#   docker build --target service -t ncf-recommender:service .  # gunicorn lookup service, no TensorFlow
# BASE_IMAGE: any Debian-like x86_64 image with python3 (3.11) and its venv module, e.g. an internal mirror
# of python:3.11-slim, or a debootstrapped Debian bookworm (scripts/container_test.sh builds one). For a
# reproducible build pin it by digest, not by tag: `--build-arg BASE_IMAGE=python:3.11-slim@sha256:<digest>`
# (the digest from `docker buildx imagetools inspect python:3.11-slim` or your registry); the default below
# is the tag, which moves with every Python and Debian update.
# Dependencies are pinned with sha256 hashes in requirements/*.txt (`make lock`) and installed with
# --require-hashes, wheels only. The project itself is built into a wheel with the hash-pinned build backend
# (requirements/build.txt, in a separate build venv) and installed with --no-deps --no-index: every file pip
# downloads is checked against a hash.
# Behind a TLS-intercepting proxy or a private index CA, pass its CA bundle as a build secret (never stored
# in a layer): `--secret id=pip_ca,src=/etc/ssl/certs/ca-certificates.crt`.
ARG BASE_IMAGE=python:3.11-slim

# ---- common runtime: an unprivileged user, the data and output mount points, the venv on PATH ----
FROM ${BASE_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    NCF_DATA_DIR=/data \
    NCF_OUTPUT_DIR=/output
RUN groupadd --system --gid 10001 ncf \
    && useradd --system --uid 10001 --gid ncf --home-dir /app --no-create-home --shell /usr/sbin/nologin ncf \
    && mkdir -p /app /data /output \
    && chown ncf:ncf /data /output
WORKDIR /app

# ---- the project's source, copied after the pinned requirements so a code change reuses their layers ----
FROM scratch AS source
COPY pyproject.toml README.md /src/
COPY model /src/model
COPY batch /src/batch
COPY lookup_service /src/lookup_service

# ---- build stages: a venv per image, hash-pinned requirements, then the project's wheel without deps ----
# /opt/build: a venv holding only the hash-pinned build backend; it never reaches an image.
FROM runtime AS build-base
COPY requirements/build.txt /tmp/build.txt
RUN --mount=type=secret,id=pip_ca \
    if [ -f /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
    && python3 -m venv /opt/venv \
    && python3 -m venv /opt/build \
    && /opt/build/bin/pip install --no-cache-dir --require-hashes --only-binary=:all: --requirement /tmp/build.txt

FROM build-base AS project-wheel
COPY --from=source /src /src
RUN /opt/build/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation --no-index --wheel-dir /dist /src

FROM build-base AS batch-build
COPY requirements/batch.txt /tmp/requirements.txt
RUN --mount=type=secret,id=pip_ca \
    if [ -f /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
    && pip install --no-cache-dir --require-hashes --only-binary=:all: --requirement /tmp/requirements.txt
COPY --from=project-wheel /dist /dist
RUN pip install --no-cache-dir --no-deps --no-index /dist/*.whl \
    && pip uninstall --yes pip setuptools

FROM build-base AS service-build
# binutils (for `strip` below) stays in this build stage only.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends binutils \
    && rm -rf /var/lib/apt/lists/*
COPY requirements/service.txt /tmp/requirements.txt
RUN --mount=type=secret,id=pip_ca \
    if [ -f /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
    && pip install --no-cache-dir --require-hashes --only-binary=:all: --requirement /tmp/requirements.txt
COPY --from=project-wheel /dist /dist
RUN pip install --no-cache-dir --no-deps --no-index /dist/*.whl \
    && pip uninstall --yes pip setuptools
# Slim the venv to what the service loads (keeps the image under 300 MB): drop pyarrow's C++ headers,
# Cython sources and tests, its Arrow Flight RPC and S3 modules (pyarrow.fs imports S3 optionally) and
# NumPy's test suites; strip debug symbols from pyarrow's shared libraries (not NumPy's: stripping its
# auditwheel-patched OpenBLAS breaks it). The import check fails the build if anything needed broke.
RUN p=$(python3 -c 'import sysconfig; print(sysconfig.get_path("purelib"))') \
    && rm -rf "$p/pyarrow/include" "$p/pyarrow/includes" "$p/pyarrow/src" "$p/pyarrow/tests" \
        "$p"/pyarrow/*.pyx "$p"/pyarrow/*.pxd "$p"/pyarrow/*.pxi "$p"/pyarrow/_pyarrow_cpp_tests* \
        "$p"/pyarrow/*flight* "$p"/pyarrow/*s3* \
    && find "$p/numpy" -depth -type d -name tests -exec rm -rf {} + \
    && find "$p/pyarrow" -type f -name '*.so*' -exec strip --strip-unneeded {} + \
    && python3 -c "import numpy, pyarrow.parquet, pyarrow.fs, pyarrow.compute, pyarrow.dataset, lookup_service.app"

# ---- batch: the nightly job; reads /data, publishes to /output, exits with ncf-batch's exit code ----
FROM runtime AS batch
ENV TF_CPP_MIN_LOG_LEVEL=2
# libgomp1: the OpenMP runtime `implicit` (iALS, BPR) links against; every model's settings load at start.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=batch-build /opt/venv /opt/venv
RUN python3 -c "import batch.cli, batch.job, model.als, model.bpr"
USER 10001:10001
VOLUME ["/data", "/output"]
ENTRYPOINT ["ncf-batch"]
CMD ["run"]

# ---- service: the lookup service under gunicorn; reads /output only ----
# The port: NCF_BIND at run time (`-e NCF_BIND=0.0.0.0:9000`), default from the build argument NCF_PORT.
# The health check reads NCF_BIND too, so it follows.
FROM runtime AS service
ARG NCF_PORT=8000
ENV NCF_BIND=0.0.0.0:${NCF_PORT}
COPY --from=service-build /opt/venv /opt/venv
COPY deploy/healthcheck.py /usr/local/bin/ncf-healthcheck
USER 10001:10001
VOLUME ["/data", "/output"]
EXPOSE ${NCF_PORT}
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 CMD ["python3", "/usr/local/bin/ncf-healthcheck"]
ENTRYPOINT ["ncf-serve"]
