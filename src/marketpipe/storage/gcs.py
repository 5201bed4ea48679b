"""Google Cloud Storage behind the lake (Google itself, or fake-gcs-server as its emulator).

Credentials: pyarrow's GcsFileSystem takes no key file, only Google's default chain
(GOOGLE_APPLICATION_CREDENTIALS, gcloud's user credentials, the metadata server on GCP) or a
bare access token. A token is not refreshed by pyarrow, so a consumer would lose access after
its hour; a `credentials_file` is therefore handed to the default chain by pointing
GOOGLE_APPLICATION_CREDENTIALS at it (refused if that already names another file). Only the
path and the key type are ever put into a message, never the file's content.
"""

import json
import os
from dataclasses import dataclass
from datetime import timedelta

import pyarrow.fs as pafs

from marketpipe.model.errors import StorageError
from marketpipe.storage.lake import ParquetLake

CREDENTIALS_VARIABLE = "GOOGLE_APPLICATION_CREDENTIALS"
GOOGLE = "Google Cloud Storage"


@dataclass(frozen=True, slots=True)
class GcsLocation:
    bucket: str
    prefix: str = ""  # object name prefix inside the bucket, e.g. "lake"
    endpoint: str | None = None  # http(s)://host:port of an emulator; None means Google
    credentials_file: str | None = None  # a service-account JSON; None: Google's environment
    project: str | None = None  # only needed to create a bucket
    # How long the client retries transient errors before it fails (its default: 15 min),
    # so a dead endpoint is a StorageError in seconds rather than a hang.
    retry_s: float = 15.0

    @property
    def root(self) -> str:
        """`bucket/prefix` as pyarrow paths it; empty segments of the prefix are dropped (GCS
        would keep `a//b` as a distinct name)."""
        return "/".join([self.bucket, *(s for s in self.prefix.split("/") if s)])

    @property
    def uri(self) -> str:
        """The lake's root as a `gs://` URI (what BigQuery load jobs take)."""
        return f"gs://{self.root}"

    @property
    def where(self) -> str:
        return self.endpoint or GOOGLE


def gcs_filesystem(location: GcsLocation) -> pafs.GcsFileSystem:
    """Anonymous against an emulator endpoint unless a credentials file is given; against
    Google, the default credential chain (see the module docstring)."""
    scheme, endpoint = "https", location.endpoint
    if endpoint is not None:
        scheme, _, host = endpoint.partition("://")
        if not host or scheme not in ("http", "https"):
            raise StorageError(f"GCS endpoint {endpoint!r} needs a scheme, e.g. http://host:4443")
        endpoint = host.rstrip("/")
    if location.retry_s <= 0:
        raise StorageError(f"GCS retry_s must be positive, not {location.retry_s}")
    if location.credentials_file is not None:
        use_credentials_file(location.credentials_file)
    try:
        return pafs.GcsFileSystem(
            anonymous=location.endpoint is not None and location.credentials_file is None,
            scheme=scheme,
            endpoint_override=endpoint,
            project_id=location.project,
            retry_time_limit=timedelta(seconds=location.retry_s),
        )
    except (OSError, ValueError) as exc:
        raise StorageError(f"cannot configure GCS at {location.where}: {exc}") from exc


def use_credentials_file(path: str) -> None:
    """Point Google's default chain at a key file, after checking it is one."""
    absolute = os.path.abspath(os.path.expanduser(path))
    try:
        with open(absolute, encoding="utf-8") as file:
            key = json.load(file)
    except OSError as exc:
        raise StorageError(
            f"GCS credentials file {absolute} is not readable: {exc.strerror}"
        ) from None
    except ValueError:
        raise StorageError(f"GCS credentials file {absolute} is not JSON") from None
    if not isinstance(key, dict) or not isinstance(key.get("type"), str):
        raise StorageError(f"GCS credentials file {absolute} has no key type (not a key file)")
    current = os.environ.get(CREDENTIALS_VARIABLE)
    if current and os.path.abspath(os.path.expanduser(current)) != absolute:
        raise StorageError(
            f"GCS credentials file {absolute} conflicts with {CREDENTIALS_VARIABLE}={current}; "
            "set one of them"
        )
    os.environ[CREDENTIALS_VARIABLE] = absolute


def gcs_lake(location: GcsLocation, *, create_bucket: bool = False) -> ParquetLake:
    """The lake in a bucket; checks the bucket exists (or creates it, which needs a project)
    so a wrong name or credentials fail at start, not at the first export. The check reads
    the bucket's metadata: the credentials need storage.buckets.get besides object access."""
    filesystem = gcs_filesystem(location)
    bucket = location.bucket
    try:
        info = filesystem.get_file_info(bucket)
        if info.type == pafs.FileType.NotFound:
            if not create_bucket:
                raise StorageError(
                    f"GCS bucket {bucket!r} does not exist at {location.where}; "
                    "create it or set gcp.gcs_bucket"
                )
            filesystem.create_dir(bucket)
    except (OSError, ValueError) as exc:
        raise StorageError(
            f"GCS at {location.where} is not usable (bucket {bucket!r}): {exc}"
        ) from exc
    return ParquetLake(location.root, filesystem)
