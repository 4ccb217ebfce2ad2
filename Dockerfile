# Placeholder until the Docker issue lands: builds the batch job image only.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
WORKDIR /app
COPY pyproject.toml README.md ./
COPY model ./model
COPY batch ./batch
COPY lookup_service ./lookup_service
RUN pip install --no-cache-dir .
ENTRYPOINT ["ncf-batch"]
CMD ["evaluate", "--help"]
