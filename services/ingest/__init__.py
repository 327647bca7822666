"""The HTTP ingest and assignment service (FastAPI)."""
