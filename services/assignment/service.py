"""The assignment service: which variant a participant sees, from a cached copy of the registry.

Used by `GET /v1/assign`, `GET /v1/experiments` (the SDK's registry) and `rhizome assign`; the
bucketing itself is `experiments.assignment`, so every path gives the same answer.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from experiments.assignment import variant_for
from experiments.registry import ExperimentSpec, ExperimentStatus, PilotSpec
from experiments.store import API_KEY_PREFIX, Store, StoreError

#: Seconds a registry copy (and an API key check) may be stale.
REGISTRY_TTL = 2.0
#: API key checks kept (the most recently used): a few thousand keys, valid or not, of about 50 bytes.
API_KEYS_CACHED = 4096
#: An API key as the store makes them: the prefix and 32 random bytes in URL-safe base64. Anything
#: else is refused without a look-up, and nothing is kept for it.
API_KEY_FORMAT = re.compile(re.escape(API_KEY_PREFIX) + r"[A-Za-z0-9_-]{43}")


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

    def __init__(self, store: Store, ttl: float = REGISTRY_TTL, keys_cached: int = API_KEYS_CACHED) -> None:
        self.store = store
        self.ttl = ttl
        self.keys_cached_limit = keys_cached
        self._lock = threading.Lock()
        self._loaded = -1e9
        self._pilots: dict[str, PilotSpec] = {}
        self._experiments: dict[str, tuple[str, ExperimentSpec, ExperimentStatus]] = {}
        #: {key: (its pilot or None, when checked)}, least recently used first.
        self._keys: OrderedDict[str, tuple[str | None, float]] = OrderedDict()
        self._keys_lock = threading.Lock()

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
        with self._keys_lock:
            self._keys.clear()

    @property
    def keys_cached(self) -> int:
        """Returns how many API key checks are kept."""
        return len(self._keys)

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
        """Returns the pilot of a valid API key, else None. A key of the right format is looked up in
        the store at most once per TTL (the last `keys_cached_limit` checks are kept); any other is
        refused at once."""
        if API_KEY_FORMAT.fullmatch(token) is None:
            return None
        now = time.monotonic()
        with self._keys_lock:
            cached = self._keys.get(token)
            if cached is not None and now - cached[1] < self.ttl:
                self._keys.move_to_end(token)
                return cached[0]
        pilot = self.store.pilot_for_api_key(token)
        with self._keys_lock:
            self._keys[token] = (pilot, now)
            self._keys.move_to_end(token)
            while len(self._keys) > self.keys_cached_limit:
                self._keys.popitem(last=False)
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
