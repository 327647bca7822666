"""The assignment service (see `service.py`)."""
