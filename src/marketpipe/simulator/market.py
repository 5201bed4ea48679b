"""A synthetic market: realistic-looking trades, vectorized with numpy, deterministic per seed.

Each symbol is generated in chunks of columns:
- volatility follows a slow log-normal regime (AR(1) per block of trades), which gives
  GARCH-like clustering, and busier trading when volatility is high;
- arrivals come in clusters (a taker sweeping several makers at one instant), a clustered
  Poisson process that is bursty like a Hawkes process;
- returns are Student-t; every so often a spike moves the price 2.5–5 % within a minute,
  and often half-reverts a few minutes later;
- sizes are log-normal in dollars with a Pareto tail of whale trades (≥ $100k).

On one venue of several (`venues.MultiVenueMarket`), a `price_path` replaces the diffusion
and spikes: the price follows the asset's shared fair value plus the venue's basis, while
arrivals, sides and sizes stay the venue's own.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from marketpipe.model.records import Quote, Trade
from marketpipe.model.symbols import normalize
from marketpipe.simulator.columns import EXCHANGE, I64, UNITS, TradeColumns
from marketpipe.simulator.symbols import SymbolSpec, symbol_spec

BLOCK = 64  # trades per volatility regime step
VOL_PHI = 0.995  # regime persistence per block
VOL_SPREAD = 0.6  # stdev of log volatility
ACTIVITY = 0.5  # how much faster trading gets when volatility is high
CLUSTER_P = 0.45  # geometric cluster sizes: mean 1/p trades per taker order
SWEEP_P = 0.35  # a trade inside a cluster walks one tick deeper
SPIKES_PER_HOUR = 4.0
WHALE_P = 0.0015
MEDIAN_NOTIONAL_USD = 150.0
NOTIONAL_SIGMA = 1.6

# (normalized symbol, trade times in µs) -> log prices: a venue's price over time
PricePath = Callable[[str, npt.NDArray[np.float64]], npt.NDArray[np.float64]]


@dataclass(slots=True)
class _SymbolState:
    spec: SymbolSpec
    rng: np.random.Generator
    book_rng: np.random.Generator
    rate: float  # trades per second
    t_us: float
    logp: float
    z: float = 0.0
    next_id: int = 0
    spikes: list[tuple[float, float, float]] = field(default_factory=list)
    pending: dict[str, I64] = field(default_factory=dict)
    cursor: int = 0
    last_price_units: int = 0
    last_maker: bool = False
    last_ts_us: int = 0
    book_update_id: int = 0

    def pending_len(self) -> int:
        return int(self.pending["trade_id"].shape[0]) - self.cursor if self.pending else 0


class SyntheticMarket:
    """Trades for `symbols` at `trades_per_second` in total; same seed, same trades."""

    def __init__(
        self,
        symbols: list[str],
        trades_per_second: float,
        seed: int,
        start_us: int | None = None,
        first_ids: Mapping[str, int] | None = None,
        *,
        exchange: str = EXCHANGE,
        specs: Sequence[SymbolSpec] | None = None,
        price_path: PricePath | None = None,
        time_step_us: int = 1000,
    ) -> None:
        """`first_ids`: the first trade id of a symbol (any spelling), e.g. the id after the
        last one a data dir holds, so a restarted demo continues like a real venue, whose ids
        never go back. Other symbols start at an id drawn from the seed.

        For one venue of several: `exchange` names the trades' venue, `specs` give its own
        spellings, ticks and lots (one per symbol, in order), `price_path` its prices, and
        `time_step_us` the resolution of its trade times (Binance prints ms, others µs)."""
        if not symbols:
            raise ValueError("SyntheticMarket needs at least one symbol")
        if trades_per_second <= 0:
            raise ValueError("trades_per_second must be positive")
        if specs is not None and len(specs) != len(symbols):
            raise ValueError("specs must give one SymbolSpec per symbol")
        self.exchange = exchange
        self._price_path = price_path
        self._time_step = max(1, time_step_us)
        self.symbols = list(dict.fromkeys(normalize(s) for s in symbols))
        self.trades_per_second = float(trades_per_second)
        self.seed = seed
        self.start_us = time.time_ns() // 1000 if start_us is None else start_us
        self.clock_us = self.start_us
        if specs is None:
            specs = [symbol_spec(s, seed) for s in self.symbols]
        total_weight = sum(s.weight for s in specs)
        seeds = np.random.SeedSequence(seed).spawn(len(specs))
        starts = {normalize(k): v for k, v in (first_ids or {}).items()}
        self._states: list[_SymbolState] = []
        for spec, ss in zip(specs, seeds, strict=True):
            rng, book_rng = (np.random.default_rng(s) for s in ss.spawn(2))
            state = _SymbolState(
                spec=spec,
                rng=rng,
                book_rng=book_rng,
                rate=self.trades_per_second * spec.weight / total_weight,
                t_us=float(self.start_us),
                logp=math.log(spec.start_price),
                next_id=int(rng.integers(100_000_000, 4_000_000_000)),
                last_price_units=round(spec.start_price * UNITS),
                last_ts_us=self.start_us,
                book_update_id=int(rng.integers(1_000_000_000, 60_000_000_000)),
            )
            if spec.symbol in starts:
                state.next_id = starts[spec.symbol]
            self._states.append(state)
        self._index = {s.spec.symbol: i for i, s in enumerate(self._states)}

    # -- public API ---------------------------------------------------------------------------

    def spec(self, symbol: str) -> SymbolSpec:
        return self._states[self._index[normalize(symbol)]].spec

    @property
    def specs(self) -> list[SymbolSpec]:
        return [s.spec for s in self._states]

    def next_trade_id(self, symbol: str) -> int:
        """The id the next generated trade of `symbol` will carry."""
        st = self._states[self._index[normalize(symbol)]]
        return st.next_id - st.pending_len()

    def advance(self, until_us: int) -> list[Trade]:
        """Every trade with `ts_event <= until_us` not returned before, in time order."""
        return self.advance_columns(until_us).to_trades()

    def advance_columns(self, until_us: int) -> TradeColumns:
        """Like `advance`, as columns (no per-trade objects)."""
        parts: list[TradeColumns] = []
        for i, st in enumerate(self._states):
            while not st.pending or st.pending["ts_us"][-1] <= until_us:
                self._extend(st, max(64, int(st.rate * 2.0)))
            ts = st.pending["ts_us"]
            end = int(np.searchsorted(ts, until_us, side="right"))
            if end > st.cursor:
                parts.append(self._take(i, st, end))
        self.clock_us = max(self.clock_us, until_us)
        return self._merge(parts)

    def generate(self, n_trades: int) -> TradeColumns:
        """The next `n_trades` trades of the whole market, in time order, as columns.

        Vectorized: well over a million trades per second. It continues the same stream
        `advance` reads, so do not mix the two on one market unless that is what you mean.
        """
        total_rate = self.trades_per_second
        horizon = self.clock_us + int(n_trades / total_rate * 1.05e6) + 1000
        while True:
            for st in self._states:
                want = int(st.rate * (horizon - st.t_us) / 1e6 * 1.1) + 64
                while not st.pending or st.pending["ts_us"][-1] <= horizon:
                    self._extend(st, want)
            ends = [
                int(np.searchsorted(st.pending["ts_us"], horizon, side="right"))
                for st in self._states
            ]
            available = sum(e - st.cursor for e, st in zip(ends, self._states, strict=True))
            if available >= n_trades:
                break
            horizon += int((n_trades - available) / total_rate * 1.2e6) + 1000
        parts = [
            self._slice(i, st, st.cursor, e)
            for i, (st, e) in enumerate(zip(self._states, ends, strict=True))
        ]
        taken = self._merge(parts).take(slice(0, n_trades))
        # A symbol's share of the first n trades is a prefix of its slice; the rest stays.
        counts = np.bincount(taken.symbol_idx, minlength=len(self._states))
        for st, count in zip(self._states, counts.tolist(), strict=True):
            if count:
                st.cursor += count
                self._note_last(st, st.cursor - 1)
        if n_trades:
            self.clock_us = max(self.clock_us, int(taken.ts_us[-1]))
        return taken

    def quote(self, symbol: str) -> Quote:
        """Best bid and ask around the last trade (one tick wide), with random sizes."""
        st = self._states[self._index[normalize(symbol)]]
        bid, bid_qty, ask, ask_qty = self.book_units(symbol)
        return Quote(
            self.exchange,
            st.spec.symbol,
            bid / UNITS,
            bid_qty / UNITS,
            ask / UNITS,
            ask_qty / UNITS,
            st.last_ts_us,
            st.last_ts_us,
        )

    def book_units(self, symbol: str) -> tuple[int, int, int, int]:
        """`(bid, bid_qty, ask, ask_qty)` in 1e-8 units."""
        st = self._states[self._index[normalize(symbol)]]
        tick, step = st.spec.tick_units, st.spec.step_units
        if st.last_maker:  # last taker sold into the bid
            bid = st.last_price_units
            ask = bid + tick
        else:
            ask = st.last_price_units
            bid = max(tick, ask - tick)
        dollars = st.book_rng.lognormal(math.log(20_000.0), 1.0, size=2)
        price = bid / UNITS * st.spec.usd_per_quote
        steps = np.maximum(1, np.ceil(dollars / price / (step / UNITS))).astype(np.int64)
        return bid, int(steps[0]) * step, ask, int(steps[1]) * step

    def book_update_id(self, symbol: str) -> int:
        st = self._states[self._index[normalize(symbol)]]
        st.book_update_id += 1
        return st.book_update_id

    # -- generation ---------------------------------------------------------------------------

    def _slice(self, i: int, st: _SymbolState, start: int, end: int) -> TradeColumns:
        p = st.pending
        sl = slice(start, end)
        return TradeColumns(
            self.symbols,
            np.full(end - start, i, dtype=np.int64),
            p["trade_id"][sl],
            p["price_units"][sl],
            p["qty_units"][sl],
            p["ts_us"][sl],
            p["buyer_maker"][sl].astype(np.bool_),
            self.exchange,
        )

    def _take(self, i: int, st: _SymbolState, end: int) -> TradeColumns:
        cols = self._slice(i, st, st.cursor, end)
        st.cursor = end
        self._note_last(st, end - 1)
        return cols

    @staticmethod
    def _note_last(st: _SymbolState, index: int) -> None:
        st.last_price_units = int(st.pending["price_units"][index])
        st.last_maker = bool(st.pending["buyer_maker"][index])
        st.last_ts_us = int(st.pending["ts_us"][index])

    def _merge(self, parts: list[TradeColumns]) -> TradeColumns:
        merged = TradeColumns.concat(parts, self.symbols, self.exchange)
        if len(parts) > 1:
            merged = merged.take(np.argsort(merged.ts_us, kind="stable"))
        return merged

    def _extend(self, st: _SymbolState, n: int) -> None:
        chunk = self._chunk(st, n)
        if st.pending:
            keep = slice(st.cursor, None)
            st.pending = {k: np.concatenate((v[keep], chunk[k])) for k, v in st.pending.items()}
        else:
            st.pending = chunk
        st.cursor = 0

    def _chunk(self, st: _SymbolState, n: int) -> dict[str, I64]:
        rng, spec = st.rng, st.spec
        # Volatility regime: AR(1) on a standard normal, one step per block.
        blocks = n // BLOCK + 1
        shocks = rng.standard_normal(blocks) * math.sqrt(1 - VOL_PHI**2)
        regime = np.empty(blocks)
        z = st.z
        for b in range(blocks):
            z = VOL_PHI * z + shocks[b]
            regime[b] = z
        st.z = z
        zt = np.repeat(regime, BLOCK)[:n]

        # Clustered arrivals: geometric cluster sizes, most trades of a cluster share a time.
        sizes = rng.geometric(CLUSTER_P, size=n)
        ends = np.cumsum(sizes)
        k = int(np.searchsorted(ends, n)) + 1
        sizes = sizes[:k]
        sizes[-1] = int(sizes[-1]) - (int(ends[k - 1]) - n)
        starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        first = np.zeros(n, dtype=np.bool_)
        first[starts] = True
        activity = np.exp(-ACTIVITY * zt - ACTIVITY**2 / 2)
        # Gaps inside a cluster come out of the rate's time budget, so the mean rate holds.
        inner_mean = min(0.0008, 1.0 / st.rate)
        inner_per_cluster = (1.0 / CLUSTER_P - 1.0) * 0.25 * inner_mean
        cluster_mean = 1.0 / (CLUSTER_P * st.rate) - inner_per_cluster
        cluster_gap = rng.exponential(cluster_mean, size=n) * activity
        inner_gap = rng.exponential(inner_mean, size=n) * (rng.random(n) < 0.25)
        gaps = np.where(first, cluster_gap, inner_gap)
        t_prev = st.t_us
        t = t_prev + np.cumsum(gaps) * 1e6
        st.t_us = float(t[-1])
        res = self._time_step
        ts_us = (t // res).astype(np.int64) * res

        if self._price_path is None:
            # Log mid price: Student-t diffusion scaled by the regime, plus spikes.
            sigma = spec.vol_per_sqrt_s * np.exp(VOL_SPREAD * zt - VOL_SPREAD**2 / 2)
            returns = sigma * np.sqrt(gaps) * rng.standard_t(4, size=n) / math.sqrt(2.0)
            logp = st.logp + np.cumsum(returns) + self._spike_offsets(st, t_prev, t)
        else:
            logp = self._price_path(spec.symbol, ts_us.astype(np.float64))
        st.logp = float(logp[-1])

        # Trades hit the bid (taker sells, `m` true) or lift the ask; sweeps walk the book.
        maker = np.repeat(rng.random(k) < 0.5, sizes)
        direction = np.where(maker, -1, 1).astype(np.int64)
        steps = ((~first) & (rng.random(n) < SWEEP_P)).astype(np.int64) * direction
        walk = np.cumsum(steps)
        walk = walk - np.repeat(walk[starts], sizes)
        mid_ticks = np.rint(np.exp(logp) * UNITS / spec.tick_units).astype(np.int64)
        ticks = np.maximum(1, mid_ticks + np.where(maker, 0, 1) + walk)
        price_units = ticks * spec.tick_units

        # Sizes in dollars: log-normal body, Pareto whales of $100k and up.
        notional = rng.lognormal(math.log(MEDIAN_NOTIONAL_USD), NOTIONAL_SIGMA, size=n)
        whales = rng.random(n) < WHALE_P
        notional[whales] = np.minimum(
            100_000.0 * (1.0 + rng.pareto(1.5, size=int(whales.sum()))), 5_000_000.0
        )
        price_usd = price_units / UNITS * spec.usd_per_quote
        steps = np.maximum(1, np.ceil(notional / price_usd / (spec.step_units / UNITS)))
        # Cheap coins (SHIB) times whale notionals can pass int64 in 1e-8 units: cap the size.
        steps = np.minimum(steps, np.iinfo(np.int64).max // (2 * spec.step_units))
        qty_units = steps.astype(np.int64) * spec.step_units

        ids = st.next_id + np.arange(n, dtype=np.int64)
        st.next_id += n
        return {
            "trade_id": ids,
            "price_units": price_units,
            "qty_units": qty_units,
            "ts_us": ts_us,
            "buyer_maker": maker.astype(np.int64),
        }

    @staticmethod
    def _spike_offsets(st: _SymbolState, t_prev: float, t: np.ndarray) -> np.ndarray:
        """Log-price offsets of the spikes active in `(t_prev, t[-1]]` relative to `t_prev`."""
        rng = st.rng
        span_s = (t[-1] - t_prev) / 1e6
        for _ in range(int(rng.poisson(SPIKES_PER_HOUR * span_s / 3600.0))):
            start = t_prev + rng.random() * (t[-1] - t_prev)
            duration = rng.uniform(5e6, 40e6)
            size = rng.choice((-1.0, 1.0)) * rng.uniform(0.025, 0.05)
            st.spikes.append((start, duration, size))
            if rng.random() < 0.6:  # partial reversion a few minutes later
                st.spikes.append((start + rng.uniform(60e6, 600e6), 120e6, -0.5 * size))
        offsets = np.zeros(t.shape[0])
        for start, duration, size in st.spikes:
            before = min(max((t_prev - start) / duration, 0.0), 1.0)
            offsets += size * (np.clip((t - start) / duration, 0.0, 1.0) - before)
        st.spikes = [s for s in st.spikes if s[0] + s[1] > t[-1]]
        return offsets
