"""Processes around the event backbone: ingest, assignment, SDK, simulator, broker manager, CLI."""
