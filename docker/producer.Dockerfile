# syntax=docker/dockerfile:1
# The producer image, built from the repository root:
#   docker build -f docker/producer.Dockerfile -t tradestream-producer .
# Builder stage: wheels for the project and its dependencies; the final stage gets no compilers.
FROM python:3.12.8-slim-bookworm AS builder
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY tradestream ./tradestream
COPY producer ./producer
COPY lambdas ./lambdas
COPY ingest_api ./ingest_api
COPY ml ./ml
COPY infra ./infra
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.12.8-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    TRADESTREAM_TEMPLATE_DIR=/app/infra/cloudformation
COPY --from=builder /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels tradestream==0.1.0 \
    && rm -rf /wheels \
    && useradd --create-home --uid 10001 tradestream
WORKDIR /app
# The templates are read at run time (the local flavour and the emulations' settings).
COPY infra ./infra
USER 10001
CMD ["python", "-m", "producer"]
