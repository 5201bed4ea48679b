"""Comparing candle sets from different engines.

Exact: the window, open/high/low/close (chosen trades' prices), trade counts, first/last
trade ids, finality. Sums (volumes, VWAP) are float64 additions whose order depends on how
trades were batched, so they match by `harness.reference.sums_agree` (relative 1e-9), not bit
for bit. `revision` counts re-publications, which depends on batching too, and is not compared.
"""

from collections.abc import Iterable

from harness.reference import SUM_FIELDS, sums_agree
from marketpipe.model.records import Candle

EXACT = tuple(f for f in Candle.__struct_fields__ if f not in SUM_FIELDS and f != "revision")

Key = tuple[str, str, str, int]


def by_key(candles: Iterable[Candle]) -> dict[Key, Candle]:
    return {(c.exchange, c.symbol, c.interval, c.open_time): c for c in candles}


def differences(ours: dict[Key, Candle], theirs: dict[Key, Candle], limit: int = 5) -> list[str]:
    out = []
    for key in sorted(set(ours) | set(theirs)):
        a, b = ours.get(key), theirs.get(key)
        if a is None or b is None:
            out.append(f"{key}: only in {'theirs' if a is None else 'ours'}")
        else:
            bad = [f for f in EXACT if getattr(a, f) != getattr(b, f)] + [
                f for f in SUM_FIELDS if not sums_agree(getattr(a, f), getattr(b, f))
            ]
            if bad:
                out.append(
                    f"{key}: {', '.join(f'{f} {getattr(a, f)} != {getattr(b, f)}' for f in bad)}"
                )
        if len(out) >= limit:
            break
    return out
