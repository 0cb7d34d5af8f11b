"""Alembic migrations of Vitrail's database, run programmatically (no alembic.ini).

The schema changes live here as data, one revision file per change under
``versions/`` with short readable ids ("0001", "0002", ...), so that every
deployment (SQLite, PostgreSQL, MariaDB) reaches the same schema by the same
steps. :func:`vitrail.storage.database.upgrade` is the one way to apply them.
"""

from __future__ import annotations

from pathlib import Path

MIGRATIONS_DIR = Path(__file__).resolve().parent
"""Alembic's ``script_location``: found from this file, so it works from a wheel or a checkout."""

VERSION_TABLE = "vitrail_alembic_version"
"""Where Alembic records the applied revision. Not the default ``alembic_version``, so
Vitrail can share a database (or a schema) with another Alembic-managed application."""

__all__ = ["MIGRATIONS_DIR", "VERSION_TABLE"]
