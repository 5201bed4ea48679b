"""The server scripts' runner for the tests: harness/servers.py (shared with the bench), plus
the pytest side: a failed script fails the test with its stderr alone, and the start-up times
go into pytest's summary."""

from collections.abc import Generator

import pytest

from harness.servers import (
    SCRIPTS,
    STARTUPS,
    ScriptServer,
    ServerScriptError,
    run_script,
    server_dir,
)

__all__ = ["SCRIPTS", "STARTUPS", "ScriptServer", "ServerScriptError", "run_script", "server_dir"]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if call.excinfo is not None and call.excinfo.errisinstance(ServerScriptError):
        # Its stderr says what to install; a traceback through subprocess would bury it.
        report.longrepr = str(call.excinfo.value)
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if STARTUPS:
        line = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in STARTUPS)
        terminalreporter.write_line(f"server start-up times: {line}")
