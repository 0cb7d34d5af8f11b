"""How a processor is built from the configuration: the datasources' transformers, the state
tables and the template evaluator.

The graph leader builds its processors here, and so does the reconstruction worker
(:mod:`vitrail.services.time_travel`): a graph rebuilt at a past time must fold the log
exactly as the live one did.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vitrail.config import Settings
from vitrail.datasources.base import Driver
from vitrail.datasources.state_tables import load_state_table
from vitrail.evaluator import templates as template_language
from vitrail.evaluator.engine import Evaluator
from vitrail.graph.entity_graph import EntityGraph
from vitrail.graph.processor import Processor, ProcessorConfig
from vitrail.services.drivers import build_drivers
from vitrail.services.graph_role import ProcessorFactory


def processor_factory(
    settings: Settings, drivers: Mapping[str, Driver] | None = None, static_directory: Path | None = None
) -> ProcessorFactory:
    """Empty and restored processors for ``settings`` (``drivers``: the enabled ones, built if not given).

    Raises :class:`~vitrail.graph.states.StateTableError` for unreadable ``graph.values_dir`` files.
    """
    if drivers is None:
        drivers = build_drivers(settings, static_directory)
    states = load_state_table(settings.graph.values_dir)
    transformers = {name: driver.transformer() for name, driver in drivers.items()}
    config = ProcessorConfig(settings.graph.consistency_rounds, settings.graph.dedup_window)

    def evaluator(graph: EntityGraph) -> Evaluator:
        return Evaluator(graph, states, template_language.parse_for_evaluator)

    def fresh() -> Processor:
        processor = Processor(transformers, states, config)
        processor.attach(evaluator(processor.graph))
        return processor

    def load(document: dict[str, Any]) -> Processor:
        return Processor.load(document, transformers, states, config, reactor=evaluator)

    return ProcessorFactory(fresh, load)


__all__ = ["processor_factory"]
