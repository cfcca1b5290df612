"""``python -m ingest_api``: the container entrypoint; HOST, PORT and the rest come from the
environment (see IngestSettings)."""

from __future__ import annotations

from .server import serve
from .settings import IngestSettings


def main() -> None:
    settings = IngestSettings()
    serve(settings.host, settings.port, settings)


if __name__ == "__main__":
    main()
