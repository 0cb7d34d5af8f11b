"""Alembic revision files, one per schema change (a package so they ship with the wheel)."""
