"""One BigQuery dataset, as the warehouse uses it: queries with positional parameters, Parquet
load jobs, table listing, every call with a deadline and every failure as a StorageError.

The deadline matters: the client library retries a server error for up to ten minutes by
default, so a dead or failing server would look like a hang. Loads are resumable uploads
(the client's choice when no size is given), which every BigQuery endpoint accepts.
"""

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import requests
from google.api_core.client_options import ClientOptions
from google.api_core.exceptions import GoogleAPIError, NotFound
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import bigquery

from marketpipe.model.errors import StorageError

log = logging.getLogger(__name__)
_FAILURES = (GoogleAPIError, requests.RequestException, OSError, TimeoutError)
_PARAM_TYPES = {bool: "BOOL", int: "INT64", float: "FLOAT64", str: "STRING", bytes: "BYTES"}


@dataclass(frozen=True, slots=True)
class BigQueryLocation:
    project: str
    dataset: str
    location: str = "US"
    endpoint: str | None = None  # an emulator's URL; None means Google itself
    credentials_file: str | None = None  # a service-account JSON; None: Google's environment
    timeout_s: float = 60.0

    @property
    def where(self) -> str:
        """For messages: the dataset and the server, never a credential."""
        return f"{self.project}.{self.dataset} at {self.endpoint or 'BigQuery'}"


def _credentials(location: BigQueryLocation) -> Credentials | None:
    if location.endpoint is not None:
        return AnonymousCredentials()  # type: ignore[no-untyped-call]  # emulators: none
    if location.credentials_file:
        from google.oauth2 import service_account

        try:
            loaded: Credentials = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
                location.credentials_file
            )
            return loaded
        except (OSError, ValueError) as exc:
            raise StorageError(
                f"cannot read the BigQuery credentials file {location.credentials_file!r}: "
                f"{type(exc).__name__}"
            ) from None
    return None  # application-default credentials


def _parameter(value: Any) -> bigquery.ScalarQueryParameter:
    kind = _PARAM_TYPES.get(type(value), "STRING")
    return bigquery.ScalarQueryParameter(None, kind, value)


class Dataset:
    """A BigQuery dataset and the client that reaches it."""

    def __init__(self, location: BigQueryLocation) -> None:
        self.location = location
        self.ref = f"{location.project}.{location.dataset}"
        options = ClientOptions(api_endpoint=location.endpoint) if location.endpoint else None
        self.client = bigquery.Client(
            project=location.project,
            credentials=_credentials(location),
            location=location.location,
            client_options=options,
        )
        self._retry = bigquery.DEFAULT_RETRY.with_deadline(location.timeout_s)
        self._timeout = location.timeout_s

    def close(self) -> None:
        self.client.close()  # type: ignore[no-untyped-call]

    def _failed(self, what: str, exc: BaseException) -> StorageError:
        return StorageError(f"BigQuery {what} failed ({self.location.where}): {exc}"[:2000])

    def ensure(self) -> None:
        """Create the dataset unless it exists (looked up first: some servers answer an
        existing dataset's create with a 500, whatever `exists_ok` says)."""
        try:
            try:
                self.client.get_dataset(self.ref, retry=self._retry, timeout=self._timeout)
            except NotFound:
                dataset = bigquery.Dataset(self.ref)
                dataset.location = self.location.location
                self.client.create_dataset(dataset, retry=self._retry, timeout=self._timeout)
        except _FAILURES as exc:
            raise self._failed("dataset check", exc) from exc

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement with positional `?` parameters (unqualified table names are the
        dataset's); returns its rows."""
        config = bigquery.QueryJobConfig(
            default_dataset=self.ref, query_parameters=[_parameter(p) for p in params]
        )
        try:
            job = self.client.query(
                sql, job_config=config, retry=self._retry, job_retry=None, timeout=self._timeout
            )
            return [tuple(row.values()) for row in job.result(timeout=self._timeout)]
        except _FAILURES as exc:
            raise self._failed("query", exc) from exc

    def read(self, sql: str) -> pa.Table:
        """One query's result as an Arrow table (over the REST API: no Storage Read API)."""
        try:
            job = self.client.query(
                sql, job_config=bigquery.QueryJobConfig(default_dataset=self.ref),
                retry=self._retry, job_retry=None, timeout=self._timeout,
            )  # fmt: skip
            return job.result(timeout=self._timeout).to_arrow(create_bqstorage_client=False)
        except _FAILURES as exc:
            raise self._failed("query", exc) from exc

    def load(self, table: str, data: pa.Table, columns: dict[str, str]) -> None:
        """Replace `table` with `data` (a Parquet load job: atomic, all rows or none)."""
        buffer = io.BytesIO()
        pq.write_table(data, buffer)
        buffer.seek(0)
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            schema=[bigquery.SchemaField(name, kind) for name, kind in columns.items()],
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
        )
        try:
            job = self.client.load_table_from_file(
                buffer, f"{self.ref}.{table}", job_config=config, rewind=True,
                timeout=self._timeout,
            )  # fmt: skip
            job.result(timeout=self._timeout)
        except _FAILURES as exc:
            raise self._failed(f"load into {table}", exc) from exc

    def tables(self, prefix: str) -> list[str]:
        try:
            found = self.client.list_tables(self.ref, retry=self._retry, timeout=self._timeout)
            return sorted(t.table_id for t in found if t.table_id.startswith(prefix))
        except _FAILURES as exc:
            raise self._failed("table listing", exc) from exc

    def drop(self, table: str) -> None:
        try:
            self.client.delete_table(
                f"{self.ref}.{table}", not_found_ok=True, retry=self._retry,
                timeout=self._timeout,
            )  # fmt: skip
        except _FAILURES as exc:
            log.warning("staging table not dropped", extra={"table": table, "error": str(exc)})
