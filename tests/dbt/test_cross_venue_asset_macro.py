"""The dbt macro that maps a symbol to its cross-venue asset (dbt/macros/assets.sql) must treat
the same quotes as dollars as the pipeline does (model.symbols.USD_LIKE): the compare endpoint,
the divergence alert and the cross-venue marts then agree on what one asset is."""

import ast
import re
from pathlib import Path

import pytest

from marketpipe.model.symbols import USD_LIKE

MACROS = Path(__file__).parents[2] / "dbt" / "macros" / "assets.sql"

pytestmark = pytest.mark.unit


def test_the_macros_dollar_quotes_are_usd_like() -> None:
    found = re.search(
        r"macro usd_like_quotes\(\).*?return\((\[.*?\])\)", MACROS.read_text(), re.DOTALL
    )
    assert found, "usd_like_quotes() not found in dbt/macros/assets.sql"
    quotes = ast.literal_eval(found.group(1))
    assert len(quotes) == len(set(quotes))
    assert set(quotes) == USD_LIKE
