# syntax=docker/dockerfile:1
# The ingest API image (`tradestream ingest`, port 8000), built from the repository root:
#   docker build -f docker/ingest.Dockerfile -t tradestream-ingest .
# For ECS Fargate build it for linux/amd64 (the task definitions' RuntimePlatform):
#   docker build --platform linux/amd64 -f docker/ingest.Dockerfile -t tradestream-ingest .
# Builder: a virtual environment with the dependencies first (a layer cached until pyproject.toml
# changes): the core's and the `ingest` extra's, nothing any other deployable needs. Then the
# project. The final stage copies the environment: no pip, wheels or compilers run or remain in it.
FROM python:3.12.8-slim-bookworm AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/tradestream
WORKDIR /src
COPY pyproject.toml ./
RUN python -c "import sys, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies'][sys.argv[1]]))" ingest > requirements.txt \
    && /opt/tradestream/bin/pip install --no-cache-dir -r requirements.txt
COPY README.md LICENSE ./
COPY tradestream ./tradestream
COPY producer ./producer
COPY lambdas ./lambdas
COPY ingest_api ./ingest_api
COPY ml ./ml
COPY dashboard ./dashboard
RUN /opt/tradestream/bin/pip install --no-cache-dir --no-deps .

FROM python:3.12.8-slim-bookworm
ENV PATH=/opt/tradestream/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    TRADESTREAM_TEMPLATE_DIR=/app/infra/cloudformation
RUN useradd --system --uid 10001 --create-home --home-dir /home/tradestream tradestream
COPY --from=builder /opt/tradestream /opt/tradestream
WORKDIR /app
# The templates are read at run time: the local flavour's stacks and the emulations' settings.
COPY infra/cloudformation ./infra/cloudformation
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["tradestream", "ingest", "--host", "0.0.0.0", "--port", "8000"]
