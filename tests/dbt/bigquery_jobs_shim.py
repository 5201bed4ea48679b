"""A pass-through HTTP proxy in front of the BigQuery emulator that corrects one field of its
job resources, so that dbt-bigquery can run against it.

Why: goccy/bigquery-emulator v0.8.1 reports every query job as `statementType: "SELECT"`,
DDL and DML included, and gives a destination table only to statements that return rows.
dbt-bigquery reads the destination of every "SELECT" job (`client.get_table(job.destination)`
for its row count), so each CREATE VIEW, CREATE TABLE AS and MERGE that ran fine ends in
`'NoneType' object has no attribute 'path'` and fails the model. Here a job that says "SELECT"
but has no destination loses its statementType (real BigQuery names the DDL/DML kind there;
dbt then only omits the row count from its log line). Nothing else is changed: requests,
rows, errors and every other field are the emulator's own.
"""

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}
_NOT_FORWARDED = _HOP_BY_HOP | {"accept-encoding"}  # plain JSON replies, to be rewritten


def corrected(job: Any) -> Any:
    """The job resource with a "SELECT" that has no destination table made untyped."""
    if not isinstance(job, dict):
        return job
    query_stats = (job.get("statistics") or {}).get("query") or {}
    destination = ((job.get("configuration") or {}).get("query") or {}).get("destinationTable")
    if query_stats.get("statementType") == "SELECT" and not destination:
        del query_stats["statementType"]
    return job


def _handler(upstream: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _NOT_FORWARDED}
            request = urllib.request.Request(
                upstream + self.path, data=body, headers=headers, method=self.command
            )
            try:
                with urllib.request.urlopen(request, timeout=120) as response:
                    status, reply, reply_headers = (
                        response.status,
                        response.read(),
                        response.headers,
                    )
            except urllib.error.HTTPError as error:
                status, reply, reply_headers = error.code, error.read(), error.headers
            if "/jobs" in self.path and reply[:1] == b"{":
                reply = json.dumps(corrected(json.loads(reply))).encode()
            self.send_response(status)
            for key, value in reply_headers.items():
                if key.lower() not in _HOP_BY_HOP and key.lower() != "content-encoding":
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: dbt's own log has every statement

    return Handler


@contextmanager
def jobs_shim(upstream: str) -> Iterator[str]:
    """Serve the proxy on a free local port for the duration; yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(upstream.rstrip("/")))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
