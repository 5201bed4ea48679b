"""Alert rules: whale trades (per trade, at once), spikes and venue divergence (on final 1m
candles only).

`alert_id` hashes the kind and the key (trade id, candle window, episode start), so a replay
or a revision never fires the same alert twice.
"""

from collections import deque
from collections.abc import Mapping
from typing import Protocol

import polars as pl

from marketpipe.model.intervals import MINUTE_US
from marketpipe.model.records import Alert, Candle
from marketpipe.processing.alert_ids import alert_details as _details
from marketpipe.processing.alert_ids import alert_id
from marketpipe.processing.divergence import DivergenceRule


class AlertThresholds(Protocol):
    """What the rules need; `marketpipe.config.AlertSettings` provides it."""

    @property
    def whale_notional(self) -> float: ...
    @property
    def volume_spike_quote(self) -> float: ...
    @property
    def volume_spike_multiple(self) -> float: ...
    @property
    def volume_spike_history_min(self) -> int: ...
    @property
    def price_spike_pct(self) -> float: ...
    @property
    def divergence_bps(self) -> float: ...
    @property
    def divergence_s(self) -> float: ...
    @property
    def divergence_min_venues(self) -> int: ...


class AlertRules:
    """Evaluates the rules; keeps the trailing quote volumes the relative spike rule needs."""

    def __init__(self, settings: AlertThresholds) -> None:
        self.settings = settings
        self._history_us = settings.volume_spike_history_min * MINUTE_US
        # Final 1m quote volumes per (exchange, symbol), by open_time, the last hour or so.
        self._volumes: dict[tuple[str, str], dict[int, float]] = {}
        self._first_final: dict[tuple[str, str], int] = {}
        self._order: dict[tuple[str, str], deque[int]] = {}
        self.divergence = DivergenceRule(settings)

    def whales(self, trades: pl.DataFrame) -> list[Alert]:
        threshold = self.settings.whale_notional
        big = trades.filter(pl.col("price") * pl.col("qty") >= threshold)
        return [
            self.whale(r["exchange"], r["symbol"], r["trade_id"], r["price"], r["qty"], r["side"],
                       r["ts_event"])
            for r in big.iter_rows(named=True)
        ]  # fmt: skip

    def whale(
        self, exchange: str, symbol: str, trade_id: int, price: float, qty: float, side: str,
        ts_event: int,
    ) -> Alert:  # fmt: skip
        """The whale alert of one trade whose notional reached the threshold."""
        threshold = self.settings.whale_notional
        notional = price * qty
        return Alert(
            alert_id=alert_id("whale_trade", exchange, symbol, trade_id),
            kind="whale_trade",
            severity="critical" if notional >= 10 * threshold else "warning",
            exchange=exchange,
            symbol=symbol,
            ts=ts_event,
            value=notional,
            threshold=threshold,
            details=_details(trade_id=trade_id, price=price, qty=qty, side=side),
        )

    def across_venues(self, watermarks: Mapping[str, int]) -> list[Alert]:
        """Divergence alerts of the minutes every venue of an asset has finalized."""
        return self.divergence.judge(watermarks)

    def remember(self, candle: Candle) -> None:
        """Record a final 1m candle's quote volume for the trailing mean, and its close for
        the divergence rule."""
        self.divergence.remember(candle)
        key = (candle.exchange, candle.symbol)
        volumes = self._volumes.setdefault(key, {})
        order = self._order.setdefault(key, deque())
        if candle.open_time not in volumes:
            order.append(candle.open_time)
        volumes[candle.open_time] = candle.quote_volume
        first = self._first_final.get(key)
        if first is None or candle.open_time < first:
            self._first_final[key] = candle.open_time
        newest = max(order[-1], candle.open_time)
        while order and order[0] < newest - 2 * self._history_us:
            volumes.pop(order.popleft(), None)

    def on_final_minute(self, candle: Candle) -> list[Alert]:
        """Spike rules for one final 1m candle (call `remember` on earlier minutes first)."""
        alerts: list[Alert] = []
        s = self.settings
        spike = self._volume_spike(candle)
        if spike is not None:
            value, threshold, basis = spike
            alerts.append(
                Alert(
                    alert_id=alert_id(
                        "volume_spike", candle.exchange, candle.symbol, candle.open_time
                    ),
                    kind="volume_spike",
                    severity="warning",
                    exchange=candle.exchange,
                    symbol=candle.symbol,
                    ts=candle.open_time,
                    value=value,
                    threshold=threshold,
                    details=_details(
                        open_time=candle.open_time, basis=basis, trades=candle.trade_count
                    ),
                )
            )
        change = candle.close / candle.open - 1 if candle.open else 0.0
        if abs(change) >= s.price_spike_pct:
            alerts.append(
                Alert(
                    alert_id=alert_id(
                        "price_spike", candle.exchange, candle.symbol, candle.open_time
                    ),
                    kind="price_spike",
                    severity="critical" if abs(change) >= 2.5 * s.price_spike_pct else "warning",
                    exchange=candle.exchange,
                    symbol=candle.symbol,
                    ts=candle.open_time,
                    value=change,
                    threshold=s.price_spike_pct,
                    details=_details(
                        open_time=candle.open_time, open=candle.open, close=candle.close
                    ),
                )
            )
        return alerts

    def _volume_spike(self, candle: Candle) -> tuple[float, float, str] | None:
        s = self.settings
        if candle.quote_volume >= s.volume_spike_quote:
            return candle.quote_volume, s.volume_spike_quote, "absolute"
        key = (candle.exchange, candle.symbol)
        first = self._first_final.get(key)
        start = candle.open_time - self._history_us
        # The relative rule needs a full trailing hour of history; missing minutes count as 0.
        if first is None or first > start:
            return None
        volumes = self._volumes.get(key, {})
        total = sum(v for t, v in volumes.items() if start <= t < candle.open_time)
        mean = total / s.volume_spike_history_min
        if mean > 0 and candle.quote_volume >= s.volume_spike_multiple * mean:
            return candle.quote_volume, s.volume_spike_multiple * mean, "relative"
        return None
