"""The server fixtures start real servers that answer, and PostgreSQL survives a restart."""

import psycopg
import pyarrow.fs as pafs
import redis

from tests.servers.s3 import S3Endpoint
from tests.servers.scripts import ScriptServer


def test_postgres_dsn_is_a_fresh_database(postgres_dsn: str) -> None:
    with psycopg.connect(postgres_dsn) as con:
        tables = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        timezone = con.execute("SHOW timezone").fetchone()
    assert tables == (0,)
    assert timezone == ("UTC",)


def test_private_postgres_keeps_its_data_across_stop_and_start(
    private_postgres: ScriptServer,
) -> None:
    with psycopg.connect(private_postgres.url, autocommit=True) as con:
        con.execute("CREATE TABLE kept (x int)")
        con.execute("INSERT INTO kept VALUES (42)")
    url = private_postgres.url
    private_postgres.stop()
    assert not private_postgres.running()
    private_postgres.start()
    assert private_postgres.url == url  # same port: clients reconnect to the same DSN
    with psycopg.connect(private_postgres.url) as con:
        assert con.execute("SELECT x FROM kept").fetchall() == [(42,)]


def test_redis_url_answers_and_starts_empty(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url) as client:
        assert client.dbsize() == 0
        client.set("k", "v")
        assert client.get("k") == b"v"


def test_s3_bucket_is_new_and_writable(s3_bucket: S3Endpoint) -> None:
    fs = pafs.S3FileSystem(
        access_key=s3_bucket.access_key,
        secret_key=s3_bucket.secret_key,
        endpoint_override=s3_bucket.endpoint,
        region=s3_bucket.region,
    )
    selector = pafs.FileSelector(s3_bucket.bucket, recursive=True)
    assert fs.get_file_info(selector) == []
    with fs.open_output_stream(f"{s3_bucket.bucket}/hello.txt") as out:
        out.write(b"hi")
    with fs.open_input_stream(f"{s3_bucket.bucket}/hello.txt") as src:
        assert src.read() == b"hi"
