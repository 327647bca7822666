"""The broker's view of a consumer group, which the worker's health and the tests judge lag by."""

from __future__ import annotations

import uuid

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from streams.events import GroupOffsets, Topics, ensure_topics

pytestmark = pytest.mark.kafka


def test_committed_and_end_offsets_per_partition_and_the_lagging_ones(kafka_bootstrap: str) -> None:
    namespace = f"g{uuid.uuid4().hex[:12]}"
    topics = Topics(namespace)
    ensure_topics(kafka_bootstrap, topics, 2)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for i in range(5):
        producer.send(topics.usage, value=b"x%d" % i, partition=1)
    producer.send(topics.usage, value=b"y", partition=0)
    producer.flush()
    producer.close()
    group = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=namespace, enable_auto_commit=False)
    group.commit({TopicPartition(topics.usage, 0): OffsetAndMetadata(1, "", -1)})
    group.commit({TopicPartition(topics.usage, 1): OffsetAndMetadata(3, "", -1)})
    group.close()

    offsets = GroupOffsets(kafka_bootstrap, namespace)
    try:
        parts = [(topics.usage, 0), (topics.usage, 1), (topics.consent, 0)]
        assert offsets.positions(parts) == {
            (topics.usage, 0): (1, 1),
            (topics.usage, 1): (3, 5),
            (topics.consent, 0): (None, 0),
        }
        assert offsets.lagging(parts) == {f"{topics.usage}/1": (3, 5)}
        assert offsets.positions([]) == {}
    finally:
        offsets.close()
