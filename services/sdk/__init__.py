"""The Python SDK for pilot services: `RhizomeClient` assigns variants locally and sends usage, feedback
and consent events in the background (docs/sdk.md)."""

from services.sdk.buffer import ClientStats
from services.sdk.client import RhizomeClient

__all__ = ["ClientStats", "RhizomeClient"]
