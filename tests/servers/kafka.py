"""Kafka fixtures: one real single-node KRaft broker per session (deploy/kafka/broker.py).

- `kafka_broker`: the session's KafkaBroker (`.bootstrap`, `.restart()`, `.kill()`, `.start()`);
  a test that restarts it must leave it running.
- `kafka_topics`: a fresh topic prefix per test, its topics created (4 partitions), so tests
  sharing the broker never see each other's messages.
"""

import itertools
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy.kafka.broker import KafkaBroker

from marketpipe.bus.kafka import Topics, ensure_topics

_prefixes = itertools.count()


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    home = Path(tmp_path_factory.mktemp("kafka"))
    broker = KafkaBroker(home)
    broker.start()  # fails with a clear message if the jars are missing (make test fetches)
    print(f"\nkafka broker {broker.bootstrap} started in {broker.startup_s:.1f}s", file=sys.stderr)
    yield broker
    broker.stop()


@pytest.fixture
def kafka_topics(kafka_broker: KafkaBroker) -> Topics:
    topics = Topics(f"t{os.getpid()}-{next(_prefixes)}")
    ensure_topics(kafka_broker.bootstrap, topics, partitions=4)
    return topics
