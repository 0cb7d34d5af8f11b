"""The REST API: Vitrage v1 compatible, plus Vitrail's own endpoints."""

from __future__ import annotations

from vitrail.api.app import create_app
from vitrail.api.backend import BackendStatus, GraphBackend

__all__ = ["BackendStatus", "GraphBackend", "create_app"]
