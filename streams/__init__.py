"""The event contract and the faust stream processors."""
