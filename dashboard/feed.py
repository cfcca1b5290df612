"""The dashboard's view of the pipeline: one snapshot a second, read only while a page watches.

Counts of the sinks come from ``tradestream.readback`` (the demo summary's module), the stages'
own counters and lags from Prometheus endpoints (compose, a separate `tradestream dashboard`) or
from probes the CLI hands in (the embedded stack, where the stages run in this process). Reading
costs the pipeline something (a DynamoDB count, an S3 listing, a few Queries), so the collector
thread runs only while a subscriber is connected and stops a few seconds after the last leaves.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from dashboard import scrape
from dashboard.model_score import ModelScore
from dashboard.settings import DashboardSettings
from tradestream import aws, readback

log = logging.getLogger(__name__)

Counters = Callable[[], dict[str, float]]
Lag = Callable[[], dict[str, dict[str, float]]]

RATE_WINDOW_S = 5.0
LATENCY_WINDOW_MS = 60_000
HEALTH_EVERY_S = 5.0
IDLE_STOP_S = 5.0  # the collector stops this long after the last subscriber left
LATEST_TRADES = 12


class Budget:
    """How often a costly read may run: no more than ``share`` of the wall-clock time, and no
    more often than the feed's interval. A read that took 0.3 s with a share of 0.05 waits 6 s
    before the next. The same rule serves every backend: against AWS a Query takes milliseconds
    and runs every tick; against moto, which runs in the embedded stack's own process and reads
    a whole partition for any Query, it backs off instead of taking the pipeline's CPU."""

    def __init__(self, share: float) -> None:
        self.share = share
        self._next = 0.0

    def due(self, now: float) -> bool:
        return now >= self._next

    def spent(self, started: float, ended: float, interval: float) -> None:
        self._next = started + max(interval, (ended - started) / self.share)


# The share of wall-clock time each costly read may take (the rest is the pipeline's).
COUNT_SHARE = 0.03  # the hot store's exact item count: a Scan of the whole table
PRICES_SHARE = 0.05  # the newest trades per symbol: a Query per symbol
LAKE_SHARE = 0.05  # one listing plus the objects that are new


@dataclass
class Probes:
    """What the embedded stack can tell the dashboard directly, without a metrics endpoint.

    ``counters`` returns stage counts by name (``producer``: distinct trades produced,
    ``producer_published``: records Kinesis acknowledged, ``ingest``); ``lag`` the iterator
    age per consumer stage and shard; ``health`` a check per component (True = up)."""

    counters: Counters | None = None
    lag: Lag | None = None
    health: dict[str, Callable[[], bool]] = field(default_factory=dict)


class Feed:
    def __init__(self, settings: DashboardSettings, probes: Probes | None = None) -> None:
        self.settings = settings
        self.probes = probes or Probes()
        self._cond = threading.Condition()
        self._snapshot: dict[str, Any] = {}
        self._seq = 0
        self._subscribers = 0
        self._thread: threading.Thread | None = None
        self._last_left = 0.0
        self._collect_lock = threading.Lock()
        # State kept across ticks (and across subscriptions):
        self._lake = (
            readback.LakeTail(
                settings.bucket_name,
                data_prefix=settings.data_prefix,
                error_prefix=settings.error_prefix,
            )
            if settings.bucket_name
            else None
        )
        self._score = ModelScore(settings.model_horizon_s)
        # Per stage, (when it was measured, value): a figure read less often than every tick
        # still gets a true rate, from its own measurements.
        self._history: dict[str, deque[tuple[float, float]]] = {}
        self._budgets = {
            "count": Budget(COUNT_SHARE),
            "prices": Budget(PRICES_SHARE),
            "lake": Budget(LAKE_SHARE),
        }
        self._measured: dict[str, tuple[float, float]] = {}  # stage -> (at, value), last read
        self._recent: dict[str, deque[dict[str, Any]]] = {}  # symbol -> newest trades
        self._predictions: dict[str, deque[tuple[int, float]]] = {}
        self._latency: dict[str, tuple[int, int]] = {}  # id -> (ingested_at, latency ms)
        self._symbols: set[str] = set()
        self._health: dict[str, bool] = {}
        self._health_at = 0.0
        self._dlq_url = settings.dlq_url
        self._http = httpx.Client()
        self._clients: dict[str, Any] = {}
        self._dynamodb = self._client("dynamodb")
        self.ticks = 0  # collections made: what the benchmark and the tests watch

    # --- subscriptions ------------------------------------------------------------------------

    @contextmanager
    def subscription(self) -> Iterator[None]:
        """Held by each connected page; the collector runs while at least one is held."""
        with self._cond:
            self._subscribers += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="dashboard-feed", daemon=True
                )
                self._thread.start()
        try:
            yield
        finally:
            with self._cond:
                self._subscribers -= 1
                self._last_left = time.monotonic()

    @property
    def subscribers(self) -> int:
        return self._subscribers

    def wait_next(self, after: int, timeout: float) -> tuple[int, dict[str, Any]]:
        """The first snapshot newer than ``after`` (or the current one after ``timeout``)."""
        with self._cond:
            self._cond.wait_for(lambda: self._seq > after, timeout)
            return self._seq, self._snapshot

    def current(self) -> dict[str, Any]:
        """The latest snapshot; collected now when no page keeps the collector running."""
        with self._cond:
            if self._snapshot and self._thread is not None and self._thread.is_alive():
                return self._snapshot
        return self._publish(self.collect())

    def _run(self) -> None:
        interval = self.settings.dashboard_interval_s
        while True:
            started = time.monotonic()
            try:
                self._publish(self.collect())
            except Exception:  # a sink that is briefly unreachable must not end the feed
                log.exception("dashboard collection failed")
            with self._cond:
                idle = self._subscribers == 0 and time.monotonic() - self._last_left > IDLE_STOP_S
                if idle:
                    self._thread = None
                    return
            time.sleep(max(0.0, interval - (time.monotonic() - started)))

    def _publish(self, snapshot: dict[str, Any]) -> dict[str, Any]:
        with self._cond:
            self._seq += 1
            snapshot["seq"] = self._seq
            self._snapshot = snapshot
            self._cond.notify_all()
        return snapshot

    # --- one collection -----------------------------------------------------------------------

    def collect(self) -> dict[str, Any]:
        with self._collect_lock:  # the thread and an on-demand /api/snapshot never interleave
            self.ticks += 1
            now = time.time()
            stages, lag = self._stage_counts()
            prices = self._prices()
            rates = self._rates(stages)
            return {
                "at": int(now * 1000),
                "stages": stages,
                "rates": rates,
                "lag_ms": lag,
                "latency_ms": self._latency_percentiles(int(now * 1000)),
                "charts": self._charts(prices),
                "model": {**self._score.summary(), "horizon_s": self.settings.model_horizon_s},
                "latest": self._latest(prices),
                "health": self._health_checks(),
            }

    def _stage_counts(self) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        s = self.settings
        stages: dict[str, float] = {}
        lag: dict[str, dict[str, float]] = {}
        if self.probes.counters is not None:
            stages.update(self.probes.counters())
        if self.probes.lag is not None:
            lag.update(self.probes.lag())
        for component, url in (
            ("producer", s.producer_metrics_url),
            ("ingest", s.ingest_metrics_url),
        ):
            if url and component not in stages:
                totals = self._scrape_totals(url)
                for stage, sample in _SCRAPED[component].items():
                    if totals is not None and sample in totals:
                        stages[stage] = totals[sample]
        if s.runtime_metrics_url and not lag:
            text = self._scrape_text(s.runtime_metrics_url)
            if text is not None:
                for (stage, shard), value in scrape.labelled(
                    text, "runtime_iterator_age_milliseconds", "stage", "shard"
                ).items():
                    lag.setdefault(stage, {})[shard] = value
        # Records on the stream: what Kinesis acknowledged to the two ways in (a producer's
        # re-sent duplicates included, as they are on the stream).
        now = time.monotonic()
        for stage, value in stages.items():  # read just now, every tick
            self._measured[stage] = (now, value)
        for stage in ("producer", "producer_published", "ingest"):
            # A component that stopped answering (a producer that finished) keeps its last
            # figure: what it put on the stream is still there.
            if stage not in stages and stage in self._measured:
                stages[stage] = self._measured[stage][1]
        published = stages.pop("producer_published", stages.get("producer", 0.0))
        stages["stream"] = published + stages.get("ingest", 0.0)
        self._measured["stream"] = (now, stages["stream"])
        self._measured.pop("producer_published", None)
        if self._due("count"):
            started = time.monotonic()
            self._measure("hotstore", readback.count_items(s.table_name, self._dynamodb))
            self._spent("count", started)
        dlq = self._dlq()
        if dlq is not None:
            self._measure("dlq", readback.queue_depth(dlq, self._client("sqs")))
        if self._lake is not None and self._due("lake"):
            started = time.monotonic()
            counts, new_lines = self._lake.refresh()
            self._measure("lake", counts.distinct_ids)
            self._measure("predicted", counts.predicted)
            self._measure("lake_errors", counts.errors)
            self._take_lake_lines(new_lines)
            self._spent("lake", started)
        for stage, (_, value) in self._measured.items():
            stages.setdefault(stage, value)
        return stages, lag

    def _due(self, read: str) -> bool:
        return self._budgets[read].due(time.monotonic())

    def _spent(self, read: str, started: float) -> None:
        self._budgets[read].spent(started, time.monotonic(), self.settings.dashboard_interval_s)

    def _measure(self, stage: str, value: float) -> None:
        self._measured[stage] = (time.monotonic(), value)

    def _take_lake_lines(self, new_lines: list[dict[str, Any]]) -> None:
        self._score.add(new_lines)
        horizon_ms = int(self.settings.model_horizon_s * 1000)
        for line in new_lines:
            prediction, symbol = line.get("prediction"), line.get("s")
            if not isinstance(prediction, (int, float)) or not isinstance(symbol, str):
                continue
            self._symbols.add(symbol)
            points = self._predictions.setdefault(symbol, deque(maxlen=self.settings.chart_points))
            # Where the model said the price would be one horizon after the trade.
            points.append((int(line["t"]) + horizon_ms, float(line["p"]) * math.exp(prediction)))

    def _prices(self) -> dict[str, list[dict[str, Any]]]:
        """The newest trades per symbol, followed incrementally: each read asks only for trades
        sorting after the newest one already held."""
        if not self._due("prices"):
            return {symbol: list(items) for symbol, items in self._recent.items()}
        started = time.monotonic()
        table, limit = self.settings.table_name, self.settings.chart_points
        if not self._symbols:
            self._symbols |= readback.some_symbols(table, self._dynamodb)
        for symbol in sorted(self._symbols):
            held = self._recent.setdefault(symbol, deque(maxlen=limit))
            after = held[-1].get("sk") if held else None
            new = readback.newest_items(table, symbol, limit, self._dynamodb, after=after)
            held.extend(new)
            for item in new:
                if "ingested_at" in item and "rt" in item:
                    self._latency[item["id"]] = (
                        int(item["ingested_at"]),
                        int(item["ingested_at"]) - int(item["rt"]),
                    )
        self._spent("prices", started)
        return {symbol: list(items) for symbol, items in self._recent.items()}

    def _latency_percentiles(self, now_ms: int) -> dict[str, Any]:
        cutoff = now_ms - LATENCY_WINDOW_MS
        self._latency = {k: v for k, v in self._latency.items() if v[0] >= cutoff}
        values = [v[1] for v in self._latency.values()]
        return {**readback.percentiles(values), "n": len(values)}

    def _rates(self, stages: dict[str, float]) -> dict[str, float]:
        """Per stage, the change over its own last ~5 s of measurements, per second."""
        rates: dict[str, float] = {}
        for stage in stages:
            at, value = self._measured.get(stage, (time.monotonic(), stages[stage]))
            history = self._history.setdefault(stage, deque())
            if not history or history[-1][0] != at:
                history.append((at, value))
            while len(history) > 2 and at - history[1][0] >= RATE_WINDOW_S:
                history.popleft()
            then, old = history[0]
            rates[stage] = round(max(0.0, value - old) / (at - then), 1) if at > then else 0.0
        return rates

    def _charts(self, prices: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        """Per symbol, uPlot's aligned columns: x (s), price, predicted (null where absent)."""
        charts: dict[str, Any] = {}
        for symbol in sorted(set(prices) | set(self._predictions)):
            trades = [(int(i["t"]), float(i["p"])) for i in prices.get(symbol, [])]
            start = trades[0][0] if trades else 0
            # The predictions of the trades on the chart (each one horizon after its trade): the
            # lake can run ahead of the hot-store follower, whose reads are budgeted.
            end = trades[-1][0] + int(self.settings.model_horizon_s * 1000) if trades else 0
            predicted = [
                pt
                for pt in self._predictions.get(symbol, ())
                if start <= pt[0] <= end or not trades
            ]
            points: dict[int, list[float | None]] = {}
            for t, p in trades:
                points.setdefault(t, [None, None])[0] = p
            for t, p in predicted:
                points.setdefault(t, [None, None])[1] = p
            xs = sorted(points)
            charts[symbol] = {
                "x": [t / 1000 for t in xs],
                "price": [points[t][0] for t in xs],
                "predicted": [points[t][1] for t in xs],
            }
        return charts

    @staticmethod
    def _latest(prices: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
        newest = sorted(
            (item for items in prices.values() for item in items[-LATEST_TRADES:]),
            # Newest to arrive, not newest trade time: sources' clocks differ per symbol.
            key=lambda item: (item.get("ingested_at", 0), item.get("rt", 0), item.get("t", 0)),
            reverse=True,
        )[:LATEST_TRADES]
        keep = ("s", "p", "v", "t", "id", "rt", "ingested_at")
        return [{k: item[k] for k in keep if k in item} for item in newest]

    # --- health -------------------------------------------------------------------------------

    def _health_checks(self) -> dict[str, bool]:
        if time.monotonic() - self._health_at < HEALTH_EVERY_S and self._health:
            return self._health
        s = self.settings
        checks: dict[str, Callable[[], bool]] = {
            "stream": lambda: _stream_active(self._client("kinesis"), s.stream_name),
            "hot store": lambda: _table_active(s.table_name, self._dynamodb),
            **({"dlq": lambda: self._dlq() is not None} if s.dlq_url or s.dlq_name else {}),
        }
        if s.bucket_name:
            checks["lake"] = lambda: _bucket_exists(self._client("s3"), s.bucket_name)
        if s.model_url:
            checks["model"] = lambda: self._http_ok(f"{s.model_url}/ping")
        elif s.endpoint_name:
            checks["model"] = lambda: _endpoint_in_service(
                self._client("sagemaker"), s.endpoint_name
            )
        for name, url in (
            ("producer", s.producer_metrics_url),
            ("ingest", s.ingest_metrics_url),
            ("runtime", s.runtime_metrics_url),
        ):
            if url:
                checks[name] = lambda url=url: self._http_ok(url)  # type: ignore[misc]
        checks.update(self.probes.health)
        health: dict[str, bool] = {}
        for name, check in checks.items():
            try:
                health[name] = bool(check())
            except Exception:  # a failing check is the answer, not an error of the feed
                health[name] = False
        self._health, self._health_at = health, time.monotonic()
        return health

    def _dlq(self) -> str | None:
        if self._dlq_url is None and self.settings.dlq_name:
            try:
                self._dlq_url = self._client("sqs").get_queue_url(QueueName=self.settings.dlq_name)[
                    "QueueUrl"
                ]
            except Exception:  # not deployed (yet): the page shows it as down
                return None
        return self._dlq_url

    def _client(self, service: str) -> Any:
        # Built once: a client costs tens of milliseconds, and boto3 clients are thread-safe.
        if service not in self._clients:
            self._clients[service] = aws.client(service)
        return self._clients[service]

    def _http_ok(self, url: str) -> bool:
        try:
            return self._http.get(url, timeout=2.0).status_code < 400
        except httpx.HTTPError:
            return False

    def _scrape_text(self, url: str) -> str | None:
        try:
            return scrape.fetch(self._http, url)
        except httpx.HTTPError:
            return None

    def _scrape_totals(self, url: str) -> dict[str, float] | None:
        text = self._scrape_text(url)
        return scrape.sample_totals(text) if text is not None else None

    def close(self) -> None:
        self._http.close()


# Stage figures out of each scraped component's counters.
_SCRAPED = {
    "producer": {
        "producer": "producer_trades_produced_total",
        "producer_published": "producer_records_published_total",
    },
    "ingest": {"ingest": "ingest_trades_accepted_total"},
}


def _stream_active(kinesis: Any, name: str) -> bool:
    summary = kinesis.describe_stream_summary(StreamName=name)
    return bool(summary["StreamDescriptionSummary"]["StreamStatus"] in ("ACTIVE", "UPDATING"))


def _table_active(name: str, dynamodb: Any) -> bool:
    return bool(dynamodb.describe_table(TableName=name)["Table"]["TableStatus"] == "ACTIVE")


def _bucket_exists(s3: Any, name: str | None) -> bool:
    s3.head_bucket(Bucket=name)
    return True


def _endpoint_in_service(sagemaker: Any, name: str | None) -> bool:
    return bool(sagemaker.describe_endpoint(EndpointName=name)["EndpointStatus"] == "InService")
