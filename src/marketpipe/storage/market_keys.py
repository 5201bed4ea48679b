"""How every store keys market snapshots: a time series per (source, asset, vs_currency),
one row per `ts_source`, insert-or-ignore (the first stored value of a key stays)."""

from collections.abc import Iterable

from marketpipe.model.records import MarketSnapshot

SnapshotKey = tuple[str, str, str, int]  # (source, asset, vs_currency, ts_source)
SeriesKey = tuple[str, str, str]  # (source, asset, vs_currency)


def snapshot_key(s: MarketSnapshot) -> SnapshotKey:
    return (s.source, s.asset, s.vs_currency, s.ts_source)


def series_key(s: MarketSnapshot) -> SeriesKey:
    return (s.source, s.asset, s.vs_currency)


def first_per_key(snapshots: Iterable[MarketSnapshot]) -> list[MarketSnapshot]:
    """One snapshot per key, the first: what insert-or-ignore keeps (and a single SQL
    statement may not hit one key twice)."""
    kept: dict[SnapshotKey, MarketSnapshot] = {}
    for s in snapshots:
        kept.setdefault(snapshot_key(s), s)
    return list(kept.values())


def keep_latest(
    latest: dict[SeriesKey, MarketSnapshot], snapshots: Iterable[MarketSnapshot]
) -> None:
    """Fold `snapshots` into `latest` per series: a larger ts_source replaces, an equal one
    does not (the first stored stays, as in the warm stores)."""
    for s in snapshots:
        key = series_key(s)
        held = latest.get(key)
        if held is None or s.ts_source > held.ts_source:
            latest[key] = s
