"""The S3-compatible object store behind cluster mode's lake (AWS S3, MinIO, s3proxy, …)."""

import os
from dataclasses import dataclass

import pyarrow.fs as pafs

from marketpipe.model.errors import StorageError
from marketpipe.storage.lake import ParquetLake


@dataclass(frozen=True, slots=True)
class S3Location:
    bucket: str
    prefix: str = ""  # key prefix inside the bucket, e.g. "lake"
    endpoint: str | None = None  # http(s)://host:port; None means AWS
    region: str = "us-east-1"
    access_key: str | None = None
    secret_key: str | None = None
    # The AWS SDK now sends CRC checksums with every request by default; several
    # S3-compatible servers reject them (501 NotImplemented). "when_required" works everywhere.
    checksums: str = "when_required"

    @property
    def root(self) -> str:
        return f"{self.bucket}/{self.prefix.strip('/')}".rstrip("/")


def s3_filesystem(location: S3Location) -> pafs.S3FileSystem:
    if location.checksums == "when_required":
        # Read by the AWS SDK when pyarrow creates its S3 client.
        os.environ.setdefault("AWS_REQUEST_CHECKSUM_CALCULATION", "WHEN_REQUIRED")
        os.environ.setdefault("AWS_RESPONSE_CHECKSUM_VALIDATION", "WHEN_REQUIRED")
    scheme = "https"
    endpoint = location.endpoint
    if endpoint is not None:
        scheme, _, host = endpoint.partition("://")
        if not host:
            raise StorageError(f"S3 endpoint {endpoint!r} needs a scheme, e.g. http://host:9000")
        endpoint = host.rstrip("/")
    try:
        return pafs.S3FileSystem(
            access_key=location.access_key,
            secret_key=location.secret_key,
            region=location.region,
            endpoint_override=endpoint,
            scheme=scheme,
            connect_timeout=5,
            request_timeout=30,
        )
    except (OSError, ValueError) as exc:
        raise StorageError(f"cannot configure S3 at {location.endpoint}: {exc}") from exc


def s3_lake(location: S3Location, *, create_bucket: bool = False) -> ParquetLake:
    """The lake in a bucket; checks the bucket exists (or creates it) so a wrong name or
    credentials fail at start, not at the first export."""
    filesystem = s3_filesystem(location)
    try:
        info = filesystem.get_file_info(location.bucket)
        if info.type == pafs.FileType.NotFound:
            if not create_bucket:
                raise StorageError(
                    f"S3 bucket {location.bucket!r} does not exist at "
                    f"{location.endpoint or 'AWS'}; create it or set cluster.s3_bucket"
                )
            filesystem.create_dir(location.bucket)
    except OSError as exc:
        raise StorageError(
            f"S3 at {location.endpoint or 'AWS'} is not usable (bucket {location.bucket!r}): {exc}"
        ) from exc
    return ParquetLake(location.root, filesystem)
