"""Structured JSON logs on stderr for every long-running process (stdout is kept for results,
like the ready line of ``tradestream up``). Lambda handlers use Powertools' Logger directly."""

from __future__ import annotations

import logging
import os
import sys

from aws_lambda_powertools import Logger


def get_logger(service: str, level: str | None = None) -> Logger:
    """A Powertools JSON logger that writes to stderr, shared by all loggers of one service."""
    return Logger(
        service=service,
        level=level or os.environ.get("LOG_LEVEL", "INFO"),
        logger_handler=logging.StreamHandler(sys.stderr),
    )
