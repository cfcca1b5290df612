"""HTTP ingest: a FastAPI service that puts client trades into Kinesis, durably.

``create_app`` builds the ASGI app; ``serve`` runs it under uvicorn (``tradestream ingest``);
``start_in_thread`` runs it beside other work in one process (``tradestream up``).
"""

from __future__ import annotations

from .app import create_app
from .server import RunningServer, serve, start_in_thread
from .settings import IngestSettings

__all__ = ["IngestSettings", "RunningServer", "create_app", "serve", "start_in_thread"]
