"""``python -m producer`` refuses bad settings: exit code 2, a readable reason, no secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SECRET = "do-not-print-me-123"


def test_invalid_settings_exit_2_without_echoing_the_key() -> None:
    # GIVEN a batch size above Kinesis' limit and a Finnhub key in the environment
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "FINNHUB_API_KEY": SECRET,
        "BATCH_MAX_RECORDS": "501",
        "FINNHUB_URL": "ws://example.com",
    }
    # WHEN the entrypoint starts
    done = subprocess.run(
        [sys.executable, "-m", "producer"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # THEN it exits 2, naming both problems as environment variables, without the key
    assert done.returncode == 2
    assert "BATCH_MAX_RECORDS: Input should be less than or equal to 500" in done.stderr
    assert "FINNHUB_URL: Value error, FINNHUB_URL must use wss://" in done.stderr
    assert SECRET not in done.stderr + done.stdout
    assert done.stdout == ""
