# syntax=docker/dockerfile:1
# The local runtime image (`tradestream local runtime`: the event source mapping and Firehose
# emulations, for compose; compose's one-shot `tradestream deploy` runs in it too), built from the
# repository root:
#   docker build -f docker/runtime.Dockerfile -t tradestream-runtime .
# Builder: a virtual environment with the dependencies first (a layer cached until pyproject.toml
# changes): the core's and the `local` extra's, nothing any other deployable needs. Then the
# project. The final stage copies the environment: no pip, wheels or compilers run or remain in it.
FROM python:3.12.8-slim-bookworm AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/tradestream
WORKDIR /src
COPY pyproject.toml ./
RUN python -c "import sys, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies'][sys.argv[1]]))" local > requirements.txt \
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
# The runtime's metrics (RUNTIME_METRICS_PORT in compose) and, as compose's `dashboard` service
# (`tradestream dashboard`), the dashboard.
EXPOSE 9102
EXPOSE 8050
# Healthy once the runtime has written its ready line (it removes the file when it stops).
HEALTHCHECK --interval=5s --timeout=3s --start-period=60s --retries=3 \
  CMD ["test", "-s", "/tmp/tradestream-runtime.ready"]
CMD ["tradestream", "local", "runtime", "--ready-file", "/tmp/tradestream-runtime.ready"]
