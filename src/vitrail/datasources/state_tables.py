"""Loads the state and severity tables: the built-in ones, then the operator's.

Each ``<vitrage_type>.yaml`` in the built-in directory and in
``graph.values_dir`` is one table (Vitrage's file format); a file of the
operator's replaces the built-in table of the same type.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from vitrail.graph.states import StateTable, StateTableError

BUILTIN_DIR = Path(__file__).parent / "values"
MAX_FILE_BYTES = 1 << 20


def _read(path: Path) -> Any:
    if path.stat().st_size > MAX_FILE_BYTES:
        raise StateTableError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise StateTableError(f"{path}: not valid YAML: {exc}") from None


def load_state_table(extra_dir: Path | None = None) -> StateTable:
    """The built-in tables overlaid with ``extra_dir``'s. Raises :class:`StateTableError`."""
    documents: dict[str, Any] = {}
    sources = [BUILTIN_DIR]
    if extra_dir is not None:
        if not extra_dir.is_dir():
            raise StateTableError(f"graph.values_dir {extra_dir} is not a directory")
        sources.append(extra_dir)
    for directory in sources:
        for path in sorted(directory.glob("*.yaml")):
            documents[path.stem] = (path, _read(path))
    table = StateTable()
    for vitrage_type, (path, document) in sorted(documents.items()):
        try:
            table.add(vitrage_type, document)
        except StateTableError as exc:
            raise StateTableError(f"{path}: {exc}") from None
    return table
