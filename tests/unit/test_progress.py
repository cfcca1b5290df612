"""The demo's live progress and summary (tradestream.cli.progress), rendered into a string."""

from __future__ import annotations

import io
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from rich.console import Console

from tradestream.cli.progress import (
    RateWindow,
    format_number,
    live_progress,
    print_summary,
    summary_rows,
)

ESCAPE = "\x1b["
SUMMARY: dict[str, Any] = {
    "produced": 20_000,
    "published_records": 20_412,
    "hotstore_items": 20_000,
    "dlq": 0,
    "lake_records": 19_998,
    "predicted": 19_990,
    "lake_errors": 2,
    "latency_ms": {"p50": 123.456, "p99": 1_834.5},
    "drained": True,
    "elapsed_s": 12.34,
    "trades_per_s": 1_620.7,
}


def console(*, terminal: bool) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=terminal, width=100), out


class Counter:
    """A snapshot whose counts rise by 1,000 per call; raises on the calls named in ``fail_on``."""

    def __init__(self, fail_on: frozenset[int] = frozenset()) -> None:
        self.calls = 0
        self.fail_on = fail_on
        self.lock = threading.Lock()

    def __call__(self) -> dict[str, int]:
        with self.lock:
            self.calls += 1
            call = self.calls
        if call in self.fail_on:
            raise RuntimeError("moto is busy")
        return {"produced": call * 1_000, "hotstore": call * 900}


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def produced_counts(text: str) -> list[int]:
    return [int(n.replace(",", "")) for n in re.findall(r"produced (\d[\d,]*)", text)]


# --- not a terminal: plain lines at an interval -------------------------------------------------


def test_off_a_terminal_progress_is_plain_lines_at_the_interval() -> None:
    # GIVEN a console that is not a terminal and a snapshot whose counts rise
    con, out = console(terminal=False)
    snapshot = Counter()

    # WHEN progress runs for several intervals
    with live_progress(snapshot, console=con, interval=0.05):
        wait_for(lambda: snapshot.calls >= 5)
    text = out.getvalue()

    # THEN there is no escape code, and one line per tick plus the final one, counts rising
    assert ESCAPE not in text
    lines = text.splitlines()
    assert len(lines) >= 4
    assert all(line.startswith("tradestream demo: ") for line in lines)
    counts = produced_counts(text)
    assert len(counts) == len(lines)
    assert counts == sorted(counts)
    assert counts[-1] == snapshot.calls * 1_000  # the final line is the last snapshot
    assert "hotstore" in lines[-1]
    assert re.search(r"produced [\d,]+ \([\d,]+/s\)", lines[-1])  # counts with their rates


def test_off_a_terminal_the_default_interval_is_seconds_not_ticks() -> None:
    # GIVEN a console that is not a terminal and no interval
    con, out = console(terminal=False)

    # WHEN a short block runs
    with live_progress(Counter(), console=con):
        time.sleep(0.3)

    # THEN only the final line was written, not a line every quarter second
    assert len(out.getvalue().splitlines()) == 1


def test_thousands_are_separated_in_the_lines() -> None:
    # GIVEN a snapshot with a large count
    con, out = console(terminal=False)

    # WHEN progress ends at once
    with live_progress(lambda: {"produced": 1_234_567}, console=con, interval=10):
        pass

    # THEN the count is separated and the line is whole
    assert "produced 1,234,567" in out.getvalue()


def test_a_snapshot_that_raises_skips_one_tick_and_later_ticks_go_on() -> None:
    # GIVEN a snapshot that fails on its second and third calls
    con, out = console(terminal=False)
    snapshot = Counter(fail_on=frozenset({2, 3}))

    # WHEN progress runs on past the failures
    with live_progress(snapshot, console=con, interval=0.02):
        wait_for(lambda: snapshot.calls >= 7)
    counts = produced_counts(out.getvalue())

    # THEN the failed calls printed nothing, and later ticks printed their counts
    assert 2_000 not in counts
    assert 3_000 not in counts
    assert 4_000 in counts
    assert counts[-1] >= 7_000


def test_a_final_snapshot_that_raises_leaves_the_last_good_counts() -> None:
    # GIVEN a snapshot that works once, then always fails
    con, out = console(terminal=False)
    snapshot = Counter(fail_on=frozenset(range(2, 100)))

    # WHEN progress ends
    with live_progress(snapshot, console=con, interval=10):
        pass

    # THEN the final line shows the last counts that were read
    assert produced_counts(out.getvalue()) == [1_000]


def test_progress_ends_when_the_block_raises() -> None:
    # GIVEN a block that fails
    con, out = console(terminal=False)

    # WHEN it raises inside live_progress
    with (
        pytest.raises(ValueError, match="boom"),
        live_progress(Counter(), console=con, interval=10),
    ):
        raise ValueError("boom")

    # THEN the error propagates, the final line is written and the thread is gone
    assert produced_counts(out.getvalue()) == [2_000]
    assert not [t for t in threading.enumerate() if t.name == "demo-progress"]


# --- a terminal: a live table -------------------------------------------------------------------


def test_on_a_terminal_progress_is_a_live_table_with_rising_counts() -> None:
    # GIVEN a terminal console and a snapshot whose counts rise
    con, out = console(terminal=True)
    snapshot = Counter()

    # WHEN progress runs for several refreshes
    with live_progress(snapshot, console=con, interval=0.02):
        wait_for(lambda: snapshot.calls >= 5)
    text = out.getvalue()

    # THEN a table with its headings was redrawn in place (cursor movement), counts rising
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    assert ESCAPE in text
    assert "\x1b[2K" in text or "\x1b[1A" in text  # Live erasing the previous frame
    for heading in ("stage", "count", "rate"):
        assert heading in plain
    table_counts = [int(n.replace(",", "")) for n in re.findall(r"produced\s+([\d,]+)", plain)]
    assert len(table_counts) >= 3
    assert table_counts == sorted(table_counts)
    assert table_counts[-1] == snapshot.calls * 1_000
    assert "tradestream demo: " not in plain  # not the plain log lines


# --- the summary --------------------------------------------------------------------------------


@pytest.mark.parametrize("terminal", [False, True])
def test_the_summary_is_a_table_of_labels_never_a_dict_repr(terminal: bool) -> None:
    # GIVEN the demo's summary, with its nested latency
    con, out = console(terminal=terminal)

    # WHEN it is printed
    print_summary(SUMMARY, console=con)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())

    # THEN it is titled, labelled for people, separated, and has no repr in it
    assert "tradestream demo: summary" in text
    assert re.search(r"latency p50 \(ms\)\s+123\.46", text)
    assert re.search(r"latency p99 \(ms\)\s+1,834\.5\b", text)
    assert re.search(r"produced\s+20,000", text)
    assert re.search(r"published records\s+20,412", text)
    assert re.search(r"hot-store items\s+20,000", text)
    assert re.search(r"DLQ\s+0", text)
    assert re.search(r"drained\s+yes", text)
    assert re.search(r"elapsed \(s\)\s+12\.34", text)
    assert re.search(r"trades/s\s+1,620\.7", text)
    for repr_part in ("{", "}", "'p50'", "True", "latency_ms"):
        assert repr_part not in text


def test_piped_the_summary_has_no_escape_codes() -> None:
    # GIVEN stdout that is not a terminal WHEN the summary is printed
    con, out = console(terminal=False)
    print_summary(SUMMARY, console=con)
    # THEN it is plain text
    assert ESCAPE not in out.getvalue()


def test_nothing_is_a_dash_and_false_is_no() -> None:
    # GIVEN a run that measured no latency and did not drain
    summary = {**SUMMARY, "latency_ms": {"p50": None, "p99": None}, "drained": False}
    # WHEN its rows are made
    rows = dict(summary_rows(summary))
    # THEN None is a dash and False is "no"
    assert rows["latency p50 (ms)"] == "\N{EN DASH}"
    assert rows["latency p99 (ms)"] == "\N{EN DASH}"
    assert rows["drained"] == "no"


def test_unknown_keys_get_readable_labels_and_nesting_flattens() -> None:
    # GIVEN keys the label table does not know, one nested two deep
    summary = {"lag_ms": {"max": 5}, "records_per_s": 2.5, "shards": {"a": {"b": 1}}}
    # WHEN its rows are made
    rows = summary_rows(summary)
    # THEN units come from the suffix and nesting becomes rows
    assert rows == [("lag max (ms)", "5"), ("records/s", "2.5"), ("shards a b", "1")]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1_234_567, "1,234,567"),
        (1234.5, "1,234.5"),
        (12.0, "12"),
        (0.125, "0.12"),
        (None, "\N{EN DASH}"),
        (True, "yes"),
        (float("nan"), "nan"),
        ([1_000, None], "1,000, \N{EN DASH}"),
    ],
)
def test_numbers_are_formatted_for_people(value: object, text: str) -> None:
    assert format_number(value) == text


# --- the rate window ----------------------------------------------------------------------------


def test_rates_are_over_the_last_window_not_since_the_start() -> None:
    # GIVEN a window of 5 s and a stage that ran at 100/s for 10 s, then stalled
    window = RateWindow(window=5)
    for second in range(11):
        window.add(second, {"n": second * 100})

    # WHEN it is sampled after 5 s of stall
    for second in range(11, 16):
        rates = window.add(second, {"n": 1_000})

    # THEN the rate is 0, not the long-run average
    assert rates == {"n": 0.0}


def test_the_first_sample_has_no_rate_and_the_second_has_one() -> None:
    window = RateWindow(window=5)
    assert window.add(0.0, {"n": 0}) == {"n": None}
    assert window.add(2.0, {"n": 500}) == {"n": 250.0}
    assert window.add(3.0, {"n": 500, "new": 7}) == {"n": 500 / 3, "new": None}
