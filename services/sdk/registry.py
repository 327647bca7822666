"""The SDK's copy of its pilot's registry, read from `GET /v1/experiments`, for local assignment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from experiments.registry import ExperimentSpec, ExperimentStatus, PilotSpec
from experiments.specs import spec_from_dict


@dataclass(frozen=True, slots=True)
class RegistryCopy:
    """The pilot's spec and its experiments' statuses as the ingest API served them at `as_of`."""

    pilot: PilotSpec
    experiments: Mapping[str, ExperimentSpec]
    statuses: Mapping[str, ExperimentStatus]
    as_of: str

    def logs_exposure(self, experiment: str) -> bool:
        """Returns True when seeing a variant of the experiment is logged: only while it runs."""
        return self.statuses.get(experiment) == "running"


def registry_from_response(doc: Mapping[str, Any]) -> RegistryCopy:
    """Returns the registry copy of a `GET /v1/experiments` body; raises ValueError when it is malformed."""
    try:
        pilot_doc, statuses, as_of = doc["pilot"], doc["statuses"], doc["as_of"]
    except (KeyError, TypeError):
        raise ValueError("GET /v1/experiments answered without pilot, statuses and as_of") from None
    pilot = spec_from_dict(pilot_doc, source="GET /v1/experiments")
    if not isinstance(statuses, Mapping):
        raise ValueError(f"statuses == {statuses!r}, must map experiment keys to statuses")
    return RegistryCopy(pilot, {e.key: e for e in pilot.experiments}, dict(statuses), str(as_of))
