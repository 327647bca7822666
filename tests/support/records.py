"""Kafka records as aiokafka hands them to a consumer, and as the worker keeps them, for tests that feed
the worker or its processor without a broker."""

from __future__ import annotations

from aiokafka.structs import ConsumerRecord, TopicPartition

from streams.processor import Incoming, fetched


def kafka_record(topic: str, partition: int, offset: int, key: bytes, value: bytes) -> ConsumerRecord[bytes, bytes]:
    """Returns the record at `offset` of the partition, with no timestamp and no headers."""
    return ConsumerRecord(topic, partition, offset, 0, 0, key, value, None, len(key), len(value), ())


def worker_record(topic: str, partition: int, offset: int, key: bytes, value: bytes) -> Incoming:
    """Returns that record as the worker's fetcher makes it (`streams.processor.fetched`)."""
    return fetched(TopicPartition(topic, partition), kafka_record(topic, partition, offset, key, value))


def decoded_record(value: bytes | None, topic: str, partition: int, offset: int, erasure_topic: str) -> Incoming:
    """Returns a record (without its key) with its event decoded as the worker decodes it, unless it is an
    erasure request: for tests that drive the processor directly."""
    rec = Incoming(value, topic, partition, offset)
    rec.decode(erasure_topic)
    return rec
