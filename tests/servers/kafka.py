"""Kafka fixtures: one real single-node KRaft broker per session (deploy/kafka/broker.py).

- `kafka_broker`: the session's KafkaBroker (`.bootstrap`, `.restart()`, `.kill()`, `.start()`);
  a test that restarts it must leave it running.
- `kafka_topics`: a fresh topic prefix per test, its topics created (4 partitions), so tests
  sharing the broker never see each other's messages.
"""

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy.kafka.broker import KafkaBroker

from marketpipe.bus.kafka import Topics, ensure_topics
from tests.servers.scripts import STARTUPS

_prefixes = itertools.count()


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    home = Path(tmp_path_factory.mktemp("kafka"))
    broker = KafkaBroker(home)
    broker.start()  # fails with a clear message if the jars are missing (make test fetches)
    assert broker.startup_s is not None
    STARTUPS.append(("kafka", broker.startup_s))
    yield broker
    broker.stop()


@pytest.fixture
def kafka_topics(kafka_broker: KafkaBroker) -> Topics:
    topics = Topics(f"t{os.getpid()}-{next(_prefixes)}")
    ensure_topics(kafka_broker.bootstrap, topics, partitions=4)
    return topics
