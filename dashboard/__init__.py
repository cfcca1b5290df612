"""The live dashboard: one page that follows the running pipeline over server-sent events.

It reads the sinks back through ``tradestream.readback`` (the demo summary's own module, so the
two never disagree), the stages' counters from Prometheus endpoints or, in the embedded stack,
from probes the CLI hands in, and serves a page whose assets are all in ``static/`` (no CDN).
"""

from dashboard.app import DashboardServer, create_app, start_in_thread
from dashboard.feed import Feed, Probes
from dashboard.settings import DashboardSettings

__all__ = [
    "DashboardServer",
    "DashboardSettings",
    "Feed",
    "Probes",
    "create_app",
    "start_in_thread",
]
