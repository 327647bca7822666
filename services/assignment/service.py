"""The assignment service: which variant a participant sees, from a cached copy of the registry.

Used by `GET /v1/assign`, `GET /v1/experiments` (the SDK's registry) and `rhizome assign`; the
bucketing itself is `experiments.assignment`, so every path gives the same answer.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from experiments.assignment import variant_for
from experiments.registry import ExperimentSpec, ExperimentStatus, PilotSpec
from experiments.store import Store, StoreError

#: Seconds a registry copy (and an API key check) may be stale.
REGISTRY_TTL = 2.0


@dataclass(frozen=True, slots=True)
class Assignment:
    experiment: str
    pilot: str
    #: None when the participant is outside the allocation, held out, or in another experiment of
    #: the same layer.
    variant: str | None
    status: ExperimentStatus

    @property
    def logs_exposure(self) -> bool:
        """Returns True when seeing this variant should be logged as an exposure."""
        return self.variant is not None and self.status == "running"


class UnknownExperiment(LookupError):
    pass


class RegistryCache:
    """Pilots, experiment statuses and API keys read from the store, refreshed every few seconds."""

    def __init__(self, store: Store, ttl: float = REGISTRY_TTL) -> None:
        self.store = store
        self.ttl = ttl
        self._lock = threading.Lock()
        self._loaded = -1e9
        self._pilots: dict[str, PilotSpec] = {}
        self._experiments: dict[str, tuple[str, ExperimentSpec, ExperimentStatus]] = {}
        self._keys: dict[str, tuple[str | None, float]] = {}

    def _refresh(self) -> None:
        with self._lock:
            if time.monotonic() - self._loaded < self.ttl:
                return
            pilots = {p.key: p for p in self.store.pilots()}
            experiments = {e.spec.key: (e.pilot_key, e.spec, e.status) for e in self.store.experiments()}
            self._pilots, self._experiments = pilots, experiments
            self._loaded = time.monotonic()

    def invalidate(self) -> None:
        with self._lock:
            self._loaded = -1e9
            self._keys.clear()

    def pilot(self, key: str) -> PilotSpec | None:
        self._refresh()
        if key not in self._pilots:
            self.invalidate()
            self._refresh()
        return self._pilots.get(key)

    def statuses(self, pilot: str) -> dict[str, ExperimentStatus]:
        self._refresh()
        return {k: status for k, (p, _, status) in self._experiments.items() if p == pilot}

    def pilot_for_key(self, token: str) -> str | None:
        """Returns the pilot of a valid API key (cached for the TTL), else None."""
        now = time.monotonic()
        cached = self._keys.get(token)
        if cached is not None and now - cached[1] < self.ttl:
            return cached[0]
        pilot = self.store.pilot_for_api_key(token)
        self._keys[token] = (pilot, now)
        return pilot

    def assign(self, experiment: str, participant_id: str) -> Assignment:
        """Returns the participant's variant; raises UnknownExperiment for an unknown key."""
        self._refresh()
        found = self._experiments.get(experiment)
        if found is None:
            self.invalidate()
            self._refresh()
            found = self._experiments.get(experiment)
        if found is None:
            raise UnknownExperiment(experiment)
        pilot_key, spec, status = found
        pilot = self._pilots[pilot_key]
        return Assignment(experiment, pilot_key, variant_for(pilot, spec, participant_id), status)


def assign_from_store(store: Store, experiment: str, participant_id: str) -> Assignment:
    """Returns the participant's variant read straight from the store (for the CLI)."""
    try:
        stored = store.experiment(experiment)
    except StoreError as exc:
        raise UnknownExperiment(experiment) from exc
    pilot = store.pilot(stored.pilot_key)
    return Assignment(experiment, stored.pilot_key, variant_for(pilot, stored.spec, participant_id), stored.status)
