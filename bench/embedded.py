"""The embedded stack end to end, before and after: `tradestream demo` flat out and steady.

Run: ``python -m bench.embedded [--before PATH] [--trades 20000] [--rate 1000] [--repeat 1]``.

Each configuration runs ``tradestream demo --json --no-dashboard`` in a subprocess of its own (a
fresh embedded stack each time), on the same machine, in one run:

- ``flat out``: ``--trades N --rate 0``, the producer as fast as the pipeline takes it; the
  figure is end-to-end trades/s (first trade produced to the last one in DynamoDB and the lake,
  stack start-up included, as a user sees it);
- ``steady``: ``--trades N --rate R``; the figure is the end-to-end latency (receive time to the
  DynamoDB write) p50 / p99 at that rate, and whether the stack kept up.

``--before PATH`` also runs the same commands from another checkout of the project (e.g. a
``git worktree`` of the commit before a change) with the same interpreter and dependencies, so
before and after are measured back to back under the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.common import report

REPO = Path(__file__).resolve().parents[1]


def run_demo(checkout: Path, trades: int, rate: float, extra_env: dict[str, str]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(checkout), **extra_env}
    for key in [k for k in env if k.startswith("AWS_ENDPOINT_URL")]:
        del env[key]  # the demo starts its own embedded stack
    command = [sys.executable, "-m", "tradestream.cli.main", "demo", "--json", "--no-dashboard"]
    command += ["--trades", str(trades), "--rate", str(rate)]
    done = subprocess.run(
        command, cwd=checkout, env=env, capture_output=True, text=True, timeout=1200, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"demo failed in {checkout} ({done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def row(label: str, mode: str, result: dict[str, Any]) -> dict[str, Any]:
    return {
        "code": label,
        "mode": mode,
        "trades": result["produced"],
        "end_to_end_trades_per_s": result["trades_per_s"],
        "p50_ms": result["latency_ms"]["p50"],
        "p99_ms": result["latency_ms"]["p99"],
        # Every trade once in DynamoDB and the lake, none in the DLQ or the error prefix.
        "exact": result["hotstore_items"] == result["lake_records"] == result["produced"]
        and result["dlq"] == 0
        and result["lake_errors"] == 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", type=Path, help="another checkout of the project to compare")
    parser.add_argument("--trades", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for every run (e.g. AGGREGATION=false)",
    )
    args = parser.parse_args()
    extra_env = dict(item.split("=", 1) for item in args.env)
    checkouts = [("after", REPO)]
    if args.before:
        checkouts.insert(0, ("before", args.before.resolve()))
    rows = []
    for _ in range(args.repeat):
        for label, checkout in checkouts:
            for mode, rate in (("flat out", 0.0), (f"steady {args.rate:g}/s", args.rate)):
                result = run_demo(checkout, args.trades, rate, extra_env)
                rows.append(row(label, mode, result))
                print(json.dumps(rows[-1]), file=sys.stderr)
    report(
        "Embedded stack end to end (tradestream demo)",
        rows,
        {"cpus": os.cpu_count(), "command": " ".join(sys.argv[1:]) or "(defaults)"},
    )


if __name__ == "__main__":
    main()
