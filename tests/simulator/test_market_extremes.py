import numpy as np

from marketpipe.simulator import SyntheticMarket


def test_whale_sizes_on_cheap_coins_never_overflow_into_negative_quantities() -> None:
    columns = SyntheticMarket(["SHIB-USDT", "PEPE-USDT"], 1000, seed=7).generate(300_000)
    assert np.all(columns.qty_units > 0)
    assert np.all(columns.price_units > 0)
