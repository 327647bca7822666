"""Erasing a participant: the one path `rhizome erase` and the citizens' portal both take.

The erasure request is published first (keyed by the participant, acknowledged by Kafka), so every
worker forgets the participant's events and recounts without them, and deletes the texts it stores
after this; then the texts already stored are deleted and the erasure is recorded in the store.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple

from experiments.store import Store
from services.ingest.publisher import Publisher, Record
from streams.events import Topics, encode_erasure


class ErasureDone(NamedTuple):
    """What an erasure did: the participant, the stored rows deleted, when, and the topic it was sent to."""

    participant: str
    rows_deleted: int
    at: datetime
    topic: str


def erase_participant(
    store: Store, publisher: Publisher, topics: Topics, participant_id: str, *, requested_by: str
) -> ErasureDone:
    """Returns what erasing the (already pseudonymous) participant did; raises `PublishError` when Kafka did
    not acknowledge the request, in which case nothing was deleted."""
    at = datetime.now(UTC)
    publisher.publish([Record(topics.erasure, participant_id.encode(), encode_erasure(participant_id, at))])
    deleted = store.erase_participant(participant_id, requested_by=requested_by)
    return ErasureDone(participant_id, deleted, at, topics.erasure)
