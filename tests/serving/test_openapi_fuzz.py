"""Property-based fuzzing of every documented operation (schemathesis over /openapi.json):
whatever the parameters, the API answers 2xx/4xx, never a 5xx. Bounded budget per operation.

Operations are driven with plain Hypothesis (`operation.as_strategy()`), which keeps this
independent of schemathesis' pytest plugin.
"""

from typing import Any

from fastapi import FastAPI, HTTPException
from hypothesis import HealthCheck, given, settings
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.openapi import from_asgi

from marketpipe.serving.app import create_app
from marketpipe.serving.backend import embedded_backend
from marketpipe.serving.settings import ApiSettings
from marketpipe.storage.embedded import EmbeddedStore
from tests.serving.conftest import healthy

EXAMPLES_PER_OPERATION = 25


def server_errors(app: FastAPI) -> tuple[int, list[str]]:
    """(operations fuzzed, failures) for every operation in the app's /openapi.json."""
    schema = from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True,
            suppress_health_check=list(HealthCheck), database=None,
        )  # fmt: skip
        def fuzz(case: Case) -> None:
            case.call_and_validate(checks=[not_a_server_error])

        try:
            fuzz()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # schemathesis reports a FailureGroup
            failures.append(f"{operation.label}: {str(exc)[:300]}")
    return len(operations), failures


class EmptyMarts:
    """A marts reader with no rows: the dbt marts' routes then fuzz their own parameter
    handling (without built marts they answer a deliberate 503, by design)."""

    def rows(self, sql: str, params: list[Any]) -> tuple[list[dict[str, Any]], str | None]:
        return [], None


def test_no_operation_answers_with_a_server_error(store: EmbeddedStore) -> None:
    app = create_app(embedded_backend(store, healthy), ApiSettings(rate_limit="1000000/minute"))
    app.state.marts = EmptyMarts()
    fuzzed, failures = server_errors(app)
    assert fuzzed >= 20
    assert not failures, "\n".join(failures)


def test_the_fuzzer_does_find_a_planted_server_error() -> None:
    app = FastAPI()

    @app.get("/fragile")
    def fragile(n: int = 0) -> dict[str, int]:
        if n > 3:
            raise HTTPException(500, "planted")
        return {"n": n}

    fuzzed, failures = server_errors(app)
    assert fuzzed == 1 and len(failures) == 1 and "GET /fragile" in failures[0]
