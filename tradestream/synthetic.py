"""The seeded synthetic market: a multi-symbol random walk, in Finnhub-shaped frames of raw trades.

Core, because two deployables use it: the producer's synthetic source publishes it
(``producer.sources.synthetic``) and ``ml`` trains the default model on it (``ml.data``).

It produces everything Finnhub does that downstream code must survive: several trades per frame,
same-millisecond trades, identical trades inside one frame (two fills; different ids), an exact
earlier trade re-sent in a later frame (a duplicate; same id), and ``v=0`` price updates.

Same seed => same trades (prices, volumes, times): trade times come from a seeded simulated clock
that starts at a fixed instant, never from the wall clock.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence

from tradestream.trade import RawTrade

# 2024-01-02 14:30 UTC, a market open; the seed adds up to an hour so runs differ by seed.
SIMULATED_START_MS = 1_704_205_800_000
ANCHOR_PRICES = {"AAPL": 190.0, "MSFT": 410.0, "AMZN": 180.0, "BINANCE:BTCUSDT": 65_000.0}
STOCK_CONDITIONS: tuple[tuple[str, ...], ...] = (
    ("1",),
    ("1", "12"),
    ("1", "24"),
    ("1", "12", "37"),
)

# Per-frame probabilities; high enough that a few hundred trades show every case.
P_PRICE_UPDATE = 0.05  # a trade with v=0
P_IDENTICAL_TWIN = 0.10  # a frame carries an exact copy of one of its trades
P_RESEND = 0.08  # a frame re-sends a trade of the previous frame


def raw_frames(symbols: Sequence[str], seed: int) -> Iterator[list[RawTrade]]:
    """The endless, deterministic sequence of raw frames for ``symbols`` and ``seed``."""
    rng = random.Random(seed)
    prices = {s: ANCHOR_PRICES.get(s) or round(rng.uniform(20, 500), 2) for s in symbols}
    clock = SIMULATED_START_MS + rng.randrange(3_600_000)
    previous: list[RawTrade] = []
    while True:
        # Frames are >= 3 ms apart and trades sit within 2 ms before their frame's time, so two
        # frames can never share a trade by accident: the only cross-frame repeats are re-sends.
        clock += rng.randint(3, 40)
        frame = [_trade(rng, rng.choice(symbols), prices, clock) for _ in range(rng.randint(1, 6))]
        if rng.random() < P_IDENTICAL_TWIN:
            frame.append(rng.choice(frame))
        if previous and rng.random() < P_RESEND:
            frame.append(rng.choice(previous))
        yield frame
        # A re-send must repeat a trade as first sent; the previous frame's re-send is itself old.
        previous = [raw for raw in frame if raw.t > clock - 3]


def _trade(rng: random.Random, symbol: str, prices: dict[str, float], clock: int) -> RawTrade:
    price = max(0.01, round(prices[symbol] * math.exp(rng.gauss(0, 0.0004)), 2))
    prices[symbol] = price
    crypto = ":" in symbol
    if rng.random() < P_PRICE_UPDATE:
        volume = 0.0
    elif crypto:
        volume = round(rng.uniform(0.0001, 0.5), 6)
    else:
        volume = float(rng.randint(1, 300))
    return RawTrade(
        s=symbol,
        p=price,
        v=volume,
        t=clock - rng.choice((0, 0, 0, 1, 2)),
        c=None if crypto else rng.choice(STOCK_CONDITIONS),
    )
