"""dbt runs with `{data_dir}/dbt` as its working directory: every path it is handed must be
absolute, or a relative data dir applies twice (`data/demo/dbt/data/demo/dbt/...`)."""

from pathlib import Path

import pytest

from marketpipe.analytics.runner import dbt_command, dbt_environment, project_dir, work_dir
from marketpipe.analytics.settings import DbtSettings


def test_the_work_dir_of_a_relative_data_dir_is_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert work_dir(Path("data/demo")) == tmp_path / "data" / "demo" / "dbt"


def test_paths_in_dbts_environment_and_command_line_are_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "dbt_project.yml").write_text("name: x\n")
    dbt = tmp_path / "bin" / "dbt"
    dbt.parent.mkdir()
    dbt.write_text("#!/bin/sh\n")
    dbt.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    settings = DbtSettings(project_dir=Path("proj"), executable=Path("bin/dbt"))
    assert project_dir(settings) == project
    work = work_dir(Path("data"))
    env = dbt_environment(settings, duckdb_path=work / "build" / "analytics.duckdb", work=work)
    for name in (
        "DBT_TARGET_PATH",
        "DBT_LOG_PATH",
        "DBT_PROFILES_DIR",
        "MARKETPIPE_DBT_DUCKDB_PATH",
    ):
        assert Path(env[name]).is_absolute(), name
    line = dbt_command(settings, "build", [], {})
    assert line[:4] == [str(dbt), "build", "--project-dir", str(project)]
