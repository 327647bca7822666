"""Kafka records as aiokafka hands them to a consumer, for tests that feed the worker without a broker."""

from __future__ import annotations

from aiokafka.structs import ConsumerRecord


def kafka_record(topic: str, partition: int, offset: int, key: bytes, value: bytes) -> ConsumerRecord[bytes, bytes]:
    """Returns the record at `offset` of the partition, with no timestamp and no headers."""
    return ConsumerRecord(topic, partition, offset, 0, 0, key, value, None, len(key), len(value), ())
