"""The cluster roles' CLI choices that need no servers."""

from marketpipe.cli.cluster import spark_exchanges


def test_spark_runs_one_candle_query_per_venue_only_when_there_are_several() -> None:
    assert spark_exchanges(["binance"]) == ()  # one query: checkpoint and fence names as before
    assert spark_exchanges(["binance", "coinbase"]) == ("binance", "coinbase")
    assert spark_exchanges([]) == ()
