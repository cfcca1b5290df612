"""Start moto server on a free loopback port, in this process, for the embedded stack.

Only used when ``AWS_ENDPOINT_URL`` is not already set: with an endpoint configured (LocalStack,
a moto server someone else runs, or real AWS) the project talks to that instead.
"""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping
from dataclasses import dataclass

from moto.server import ThreadedMotoServer

# moto accepts any credentials; botocore still refuses to sign without some.
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@dataclass
class MotoHandle:
    url: str
    server: ThreadedMotoServer

    def stop(self) -> None:
        self.server.stop()

    def reset(self) -> None:
        """Drop every resource (moto's own reset API), for test isolation."""
        import urllib.request

        # The URL is the loopback server we started ourselves.
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")  # noqa: S310
        urllib.request.urlopen(request, timeout=10).read()  # noqa: S310


def start_moto(host: str = "127.0.0.1", port: int = 0) -> MotoHandle:
    """Start moto server; port 0 picks a free port. Request logging is silenced (it is per call)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    bound_host, bound_port = server.get_host_and_port()
    return MotoHandle(url=f"http://{bound_host}:{bound_port}", server=server)


def ensure_credentials(env: MutableMapping[str, str] | None = None) -> None:
    """Give botocore dummy credentials when none are set, so local endpoints can be signed."""
    target = os.environ if env is None else env
    if not target.get("AWS_ACCESS_KEY_ID") and not target.get("AWS_PROFILE"):
        target.update(DUMMY_CREDENTIALS)
