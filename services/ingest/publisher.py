"""Publishing events to Kafka with kafka-python, answering only once the broker has acknowledged them."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from kafka import KafkaProducer
from kafka.errors import KafkaError

log = logging.getLogger("rhizome.ingest")

#: How long a request may wait for Kafka before the API answers 503.
PUBLISH_TIMEOUT = 8.0


class PublishError(RuntimeError):
    """Kafka did not acknowledge every record in time; nothing should be reported as accepted."""


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    key: bytes
    value: bytes


class Publisher:
    """A kafka-python producer with acks=all and idempotence; thread-safe."""

    def __init__(self, bootstrap: str, *, client_id: str = "rhizome-ingest") -> None:
        self.bootstrap = bootstrap
        self._lock = threading.Lock()
        self._producer: KafkaProducer | None = None
        self.client_id = client_id

    def _get(self) -> KafkaProducer:
        with self._lock:
            if self._producer is None:
                self._producer = KafkaProducer(
                    bootstrap_servers=self.bootstrap,
                    client_id=self.client_id,
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=2,
                    batch_size=256 * 1024,
                    max_block_ms=int(PUBLISH_TIMEOUT * 1000 / 2),
                    bootstrap_timeout_ms=int(PUBLISH_TIMEOUT * 1000 / 2),
                    request_timeout_ms=int(PUBLISH_TIMEOUT * 1000 / 2),
                    delivery_timeout_ms=int(PUBLISH_TIMEOUT * 1000),
                    reconnect_backoff_max_ms=1000,
                )
            return self._producer

    def publish(self, records: Sequence[Record], timeout: float = PUBLISH_TIMEOUT) -> None:
        """Returns once Kafka acknowledged every record; raises PublishError otherwise (some may
        have been written: re-sending is harmless, event ids deduplicate)."""
        deadline = time.monotonic() + timeout
        try:
            producer = self._get()
            futures = [producer.send(r.topic, key=r.key, value=r.value) for r in records]
            for f in futures:
                f.get(timeout=max(0.01, deadline - time.monotonic()))
        except (KafkaError, OSError) as exc:
            self._discard()
            raise PublishError(f"Kafka did not acknowledge the events: {exc}") from exc

    def _discard(self) -> None:
        """Drops the producer after a failure: an idempotent producer whose batches expired while the
        broker was down resets its producer id and never asks for a new one (kafka-python 3.0.12), so
        the next call starts a fresh producer."""
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            # kafka-python 3.0.12's close() flushes first: it raises, and leaves its sender running,
            # while records still wait for acknowledgements (a partition with fewer replicas in sync
            # than min.insync.replicas). Their delivery timeout fails them; the close waits for that
            # in the background, so the request is answered 503 at once.
            threading.Thread(target=_close, args=(producer,), name="rhizome-producer-close", daemon=True).start()

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=5)
                self._producer = None


def _close(producer: KafkaProducer) -> None:
    try:
        producer.close(timeout=2 * PUBLISH_TIMEOUT)
    except KafkaError as exc:
        log.warning("a discarded Kafka producer did not close: %s", exc)
