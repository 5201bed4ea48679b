"""A single-node Apache Kafka broker (KRaft: controller and broker in one JVM) for dev and CI.

The jars come from Maven Central (`deploy/kafka/pom.xml`, fetched by
`scripts/setup.d/30-kafka.sh` into `.cache/kafka/libs-<version>`). Everything else lives in
one home directory: `server.properties`, the log dirs and `broker.log`. Ports are free
ephemeral ports on 127.0.0.1, chosen once, so a restart keeps the same address and the same
data.

    python deploy/kafka/broker.py start [--home DIR]   # prints the bootstrap address
    python deploy/kafka/broker.py stop  [--home DIR]

Tests use `KafkaBroker` directly (tests/servers/kafka.py). Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KAFKA_VERSION = "3.9.1"  # keep in step with deploy/kafka/pom.xml
LIBS = REPO / ".cache" / "kafka" / f"libs-{KAFKA_VERSION}"
DEFAULT_HOME = REPO / ".cache" / "kafka" / "dev"
HEAP = os.environ.get("MARKETPIPE_KAFKA_HEAP", "-Xms128m -Xmx512m")


class BrokerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL the broker when the process that started it dies,
    so a crashed test session never leaves a JVM behind."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class KafkaBroker:
    """Format once, then start / stop / restart / kill -9 the broker in `home`."""

    def __init__(self, home: Path, *, libs: Path = LIBS, partitions: int = 4) -> None:
        self.home = home
        self.libs = libs
        self.partitions = partitions
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_s: float | None = None  # of the last start, until the broker answered

    # ---- layout --------------------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.home / "broker.json"

    @property
    def log_file(self) -> Path:
        return self.home / "broker.log"

    def _state(self) -> dict[str, int]:
        if self.state_file.exists():
            state: dict[str, int] = json.loads(self.state_file.read_text())
            return state
        return {}

    @property
    def port(self) -> int:
        return self._state()["port"]

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self, *, timeout_s: float = 120.0, tie_to_parent: bool = True) -> str:
        """Start (formatting the storage on first use); returns the bootstrap address once
        the broker accepts connections."""
        if not any(self.libs.glob("kafka_2.13-*.jar")):
            raise BrokerError(
                f"Kafka jars are missing in {self.libs}: run `bash scripts/setup.d/30-kafka.sh` "
                "(make test runs it)"
            )
        started = time.perf_counter()
        self.home.mkdir(parents=True, exist_ok=True)
        if not self.state_file.exists():
            self._format()
        state = self._state()
        env = {**os.environ, "KAFKA_HEAP_OPTS": HEAP}
        log = self.log_file.open("ab")
        command = [
            "java", *HEAP.split(), "-XX:+UseSerialGC",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{self.home / 'log4j.properties'}",
            f"-Dkafka.logs.dir={self.home}",
            "-cp", f"{self.libs}/*", "kafka.Kafka", str(self.home / "server.properties"),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            # PR_SET_PDEATHSIG fires when the starting *thread* ends: only tie from the main one.
            preexec_fn=_die_with_parent
            if tie_to_parent and threading.current_thread() is threading.main_thread()
            else None,
        )
        log.close()
        (self.home / "broker.pid").write_text(str(self.process.pid))
        self._wait_ready(state["port"], timeout_s)
        self.startup_s = time.perf_counter() - started
        return self.bootstrap

    def stop(self, timeout_s: float = 30.0) -> None:
        """Graceful shutdown (SIGTERM), SIGKILL if it does not end in time."""
        pid = self._pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not self._wait_exit(pid, timeout_s):
            self.kill()
        self._forget()

    def kill(self) -> None:
        """kill -9: the broker dies without flushing anything."""
        pid = self._pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        self._wait_exit(pid, 30)
        self._forget()

    def restart(self, *, down_s: float = 0.0) -> float:
        """Stop, stay down `down_s`, start again on the same port and data; returns start-up s."""
        self.stop()
        time.sleep(down_s)
        self.start()
        assert self.startup_s is not None
        return self.startup_s

    def is_running(self) -> bool:
        pid = self._pid()
        return pid is not None and _alive(pid)

    # ---- internals -----------------------------------------------------------------------

    def _format(self) -> None:
        port, controller = free_port(), free_port()
        data = self.home / "data"
        properties = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{controller}",
            "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(data),
            "num.partitions": str(self.partitions),
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "num.network.threads": "2",
            "num.io.threads": "2",
            "log.retention.hours": "-1",
            "log.segment.bytes": str(64 * 1024 * 1024),
            "log.cleaner.dedupe.buffer.size": str(8 * 1024 * 1024),
            "log.cleaner.threads": "1",
            "message.max.bytes": str(8 * 1024 * 1024),
        }
        (self.home / "server.properties").write_text(
            "".join(f"{k}={v}\n" for k, v in properties.items())
        )
        (self.home / "log4j.properties").write_text(
            "log4j.rootLogger=WARN, file\n"
            "log4j.logger.kafka.server.KafkaServer=INFO\n"
            "log4j.logger.kafka.server.KafkaRaftServer=INFO\n"
            "log4j.appender.file=org.apache.log4j.FileAppender\n"
            f"log4j.appender.file.File={self.home / 'server.log'}\n"
            "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
        )
        # A Kafka cluster id is a UUID in URL-safe base64 without padding.
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        result = subprocess.run(
            ["java", "-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp", f"{self.libs}/*",
             f"-Dlog4j.configuration=file:{self.home / 'log4j.properties'}",
             "kafka.tools.StorageTool", "format", "-t", cluster_id,
             "-c", str(self.home / "server.properties")],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise BrokerError(f"formatting Kafka storage failed: {result.stderr or result.stdout}")
        self.state_file.write_text(json.dumps({"port": port, "controller": controller}))

    def _wait_ready(self, port: int, timeout_s: float) -> None:
        """Ready when a Kafka ApiVersions round trip succeeds on the broker port."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise BrokerError(
                    f"Kafka exited with {self.process.returncode} during start-up; "
                    f"see {self.log_file} and {self.home / 'server.log'}"
                )
            if _api_versions_ok(port):
                return
            time.sleep(0.2)
        self.kill()
        raise BrokerError(f"Kafka did not answer on 127.0.0.1:{port} within {timeout_s:.0f}s")

    def _pid(self) -> int | None:
        if self.process is not None:
            return self.process.pid if self.process.poll() is None else None
        pid_file = self.home / "broker.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text())
            return pid if _alive(pid) else None
        return None

    def _wait_exit(self, pid: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.pid == pid:
                if self.process.poll() is not None:
                    return True
            elif not _alive(pid):
                return True
            time.sleep(0.1)
        return False

    def _forget(self) -> None:
        self.process = None
        (self.home / "broker.pid").unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _api_versions_ok(port: int) -> bool:
    """Send a Kafka ApiVersions v0 request; a well-formed answer means the broker serves."""
    request = (
        (18).to_bytes(2, "big")  # api key ApiVersions
        + (0).to_bytes(2, "big")  # api version 0
        + (1).to_bytes(4, "big")  # correlation id
        + (-1).to_bytes(2, "big", signed=True)  # null client id
    )
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(len(request).to_bytes(4, "big") + request)
            size = int.from_bytes(_read(s, 4), "big")
            body = _read(s, size)
    except OSError:
        return False
    return int.from_bytes(body[:4], "big") == 1 and int.from_bytes(body[4:6], "big") == 0


def _read(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise OSError("connection closed")
        data += chunk
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["start", "stop", "restart", "status"])
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME)
    args = parser.parse_args(argv)
    broker = KafkaBroker(args.home)
    if args.action == "start":
        if broker.is_running():
            print(broker.bootstrap)
            return 0
        broker.start(tie_to_parent=False)
        print(broker.bootstrap)
        print(f"started in {broker.startup_s:.1f}s; data in {args.home}", file=sys.stderr)
    elif args.action == "stop":
        broker.stop()
    elif args.action == "restart":
        broker.stop()
        broker.start(tie_to_parent=False)
        print(broker.bootstrap)
    else:
        print("running " + broker.bootstrap if broker.is_running() else "stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
