"""A replayed data dir with its marts built once per session (dbt runs take seconds)."""

from dataclasses import dataclass
from pathlib import Path

import pytest

from marketpipe.analytics.runner import DbtResult
from tests.dbt.warehouse import build_data_dir, dbt, require_dbt


@dataclass(frozen=True)
class BuiltMarts:
    data_dir: Path
    result: DbtResult


@pytest.fixture(scope="session")
def built_marts(tmp_path_factory: pytest.TempPathFactory) -> BuiltMarts:
    require_dbt()
    data_dir = build_data_dir(tmp_path_factory.mktemp("dbt"))
    result = dbt(data_dir, "build")
    assert result.ok, result.tail(60)
    return BuiltMarts(data_dir, result)
