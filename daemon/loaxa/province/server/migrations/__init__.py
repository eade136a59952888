"""Alembic migrations of the province database, run by the server at start."""
