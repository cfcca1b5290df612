# syntax=docker/dockerfile:1
# The local model server image (`tradestream model serve`: the SageMaker container and runtime
# API contracts, port 8080), built from the repository root:
#   docker build -f docker/model.Dockerfile -t tradestream-model .
# Builder: a virtual environment with the dependencies first (a layer cached until pyproject.toml
# changes): the core's and the `ml` extra's, nothing any other deployable needs. Then the
# project. The final stage copies the environment: no pip, wheels or compilers run or remain in it.
FROM python:3.12.8-slim-bookworm AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/tradestream
WORKDIR /src
COPY pyproject.toml ./
RUN python -c "import sys, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies'][sys.argv[1]]))" ml > requirements.txt \
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
# Train the reproducible default model now (seconds, cached in the image), so a container
# answers /ping as soon as it starts instead of training first.
RUN python -c "from ml.default_model import default_model_dir; default_model_dir()"
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/ping', timeout=2)"]
CMD ["tradestream", "model", "serve", "--host", "0.0.0.0", "--port", "8080"]
