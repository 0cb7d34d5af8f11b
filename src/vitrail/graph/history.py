"""Alarm and RCA history, derived from the fold: when each alarm and each causal link began and ended.

Seed ``002`` asks for alarm history and RCA history: the cause of an alarm
must stay known after the causing alarm has cleared. Both are *derived* from
the event log: the :class:`HistoryRecorder` watches the graph while events are
applied and, after each event, turns what changed into records stamped with
that event's sequence number and time. Replaying the same events gives the
same records, which is what lets a new graph leader finish writing the
history its predecessor could not (``docs/history.md``).

Only three things make a record: an alarm becoming active or inactive, an
active alarm changing severity, state, name or resource, and a ``causes`` edge
appearing or disappearing. An alarm is active while its vertex exists, is not
deleted and is not a placeholder, as the live alarm list says.

Times are the event's ``received_at`` (when Vitrail learned it; the event's
``sample_time`` when it has none), the same clock the graph-at-time-T
reconstruction uses, so an alarm the history shows active at T is in the
graph rebuilt at T.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from vitrail.graph.entity_graph import EntityGraph
from vitrail.graph.events import Event
from vitrail.graph.model import Edge, Vertex
from vitrail.graph.processor import Processor
from vitrail.graph.properties import Category, EdgeLabel, VertexProperty
from vitrail.graph.queries import alarm_properties

RaisedBy = Callable[[Vertex], list[str]]
"""The templates whose scenarios raise a deduced alarm (the evaluator knows)."""


class RecordKind(StrEnum):
    STARTED = "started"
    CHANGED = "changed"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class AlarmSummary:
    """What the history keeps of an alarm at one moment (the columns it is searched by, and the rest)."""

    name: str | None
    vitrage_type: str | None
    severity: str | None
    """The operational severity (CRITICAL, SEVERE, WARNING, OK, N/A), as alarm counts use it."""
    aggregated_severity: str | None
    state: str | None
    project_id: str | None
    resource_id: str | None
    resource_type: str | None
    resource_name: str | None
    resource_project_id: str | None
    deduced: bool
    templates: tuple[str, ...]
    payload: dict[str, Any] = field(compare=False, hash=False)
    """The alarm as the API showed it (``GET /v1/alarm/{id}``)."""

    def signature(self) -> tuple[Any, ...]:
        """What makes a change worth a record (not every timestamp update is)."""
        return (
            self.name,
            self.severity,
            self.aggregated_severity,
            self.state,
            self.resource_id,
            self.project_id,
            self.templates,
        )


@dataclass(frozen=True, slots=True)
class AlarmRecord:
    kind: RecordKind
    sequence: int
    time: str
    vitrage_id: str
    alarm: AlarmSummary | None
    """None for ``ENDED``."""


@dataclass(frozen=True, slots=True)
class CauseRecord:
    kind: RecordKind  # STARTED or ENDED
    sequence: int
    time: str
    source_id: str
    target_id: str


HistoryRecord = AlarmRecord | CauseRecord


def is_active_alarm(vertex: Vertex | None) -> bool:
    return (
        vertex is not None
        and vertex.vitrage_category == Category.ALARM
        and not vertex.vitrage_is_deleted
        and not vertex.vitrage_is_placeholder
    )


class HistoryRecorder:
    """Watches a graph and says, after each event, which alarms and causal links began, changed or ended.

    :meth:`follow` a processor: the recorder watches its graph
    (:meth:`EntityGraph.add_watcher`) and, after every applied event, keeps the
    records it caused until :meth:`drain` takes them. Its memory (which alarms
    and links are active) is derived from the graph by :meth:`resync`, never
    stored: a graph restored from a snapshot resyncs and goes on.
    """

    __slots__ = (
        "_active_alarms",
        "_active_causes",
        "_dirty_alarms",
        "_dirty_causes",
        "_records",
        "graph",
        "raised_by",
    )

    def __init__(self, graph: EntityGraph, raised_by: RaisedBy | None = None) -> None:
        self.graph = graph
        self.raised_by = raised_by
        self._active_alarms: dict[str, tuple[Any, ...]] = {}
        self._active_causes: set[tuple[str, str]] = set()  # membership only, never iterated for output
        self._dirty_alarms: dict[str, None] = {}
        self._dirty_causes: dict[tuple[str, str], None] = {}
        self._records: list[HistoryRecord] = []
        self.resync()
        graph.add_watcher(self)

    @classmethod
    def follow(cls, processor: Processor) -> HistoryRecorder:
        """A recorder of ``processor``'s alarms, told of every event it applies from now on."""
        reactor = processor.reactor
        raised_by = getattr(reactor, "raised_by", None)
        recorder = cls(processor.graph, raised_by)
        processor.follow(recorder.after_event)
        return recorder

    def detach(self) -> None:
        """Stop watching the graph (the processor is being discarded)."""
        self.graph.remove_watcher(self)

    def after_event(self, event: Event) -> None:
        if self._dirty_alarms or self._dirty_causes:
            self._records.extend(self.collect(event))

    def drain(self) -> list[HistoryRecord]:
        """The records of the events applied since the last call, in order."""
        records, self._records = self._records, []
        return records

    def resync(self) -> None:
        """Take the graph's current alarms and links as known (already recorded) and active."""
        self._active_alarms = {
            vertex.vitrage_id: self.summarize(vertex).signature()
            for vertex in self.graph.vertices()
            if is_active_alarm(vertex)
        }
        self._active_causes = {
            (edge.source, edge.target)
            for vertex_id in self._active_alarms
            for edge in self.graph.vertex(vertex_id).out_edges
            if _is_active_cause(edge)
        }
        self._dirty_alarms.clear()
        self._dirty_causes.clear()

    def reconcile(
        self, open_alarms: Collection[str], open_causes: Collection[tuple[str, str]], sequence: int, time: str
    ) -> list[HistoryRecord]:
        """Records that bring a stored history whose open alarms and links are these to the graph's.

        For a history that has a gap (it never started, or its writer fell
        behind every kept snapshot): alarms active in the graph and not open in
        the history start at ``sequence``; those open and no longer active end there.
        """
        graph = self.graph
        open_set = set(open_alarms)
        records: list[HistoryRecord] = [
            AlarmRecord(RecordKind.STARTED, sequence, time, vitrage_id, self.summarize(graph.vertex(vitrage_id)))
            for vitrage_id in sorted(self._active_alarms)
            if vitrage_id not in open_set
        ]
        causes = set(open_causes)
        active_causes = sorted(self._active_causes)
        records.extend(
            CauseRecord(RecordKind.STARTED, sequence, time, source, target)
            for source, target in active_causes
            if (source, target) not in causes
        )
        records.extend(
            CauseRecord(RecordKind.ENDED, sequence, time, source, target)
            for source, target in sorted(causes - self._active_causes)
        )
        records.extend(
            AlarmRecord(RecordKind.ENDED, sequence, time, vitrage_id, None)
            for vitrage_id in sorted(open_set - self._active_alarms.keys())
        )
        return records

    @property
    def active_alarms(self) -> int:
        return len(self._active_alarms)

    # -- the watcher protocol: one check per mutation -------------------------------------

    def vertex_changed(self, vitrage_id: str, vertex: Vertex | None) -> None:
        if vertex is None:
            if vitrage_id in self._active_alarms:
                self._dirty_alarms[vitrage_id] = None
        elif vertex.vitrage_category == Category.ALARM:
            self._dirty_alarms[vitrage_id] = None
        elif vertex.in_edges:
            # A resource's name or project shows in its alarms' history.
            for edge in vertex.in_edges:
                if edge.label == EdgeLabel.ON and edge.source in self._active_alarms:
                    self._dirty_alarms[edge.source] = None

    def edge_changed(self, edge: Edge) -> None:
        label = edge.label
        if label == EdgeLabel.CAUSES:
            self._dirty_causes[(edge.source, edge.target)] = None
        elif label == EdgeLabel.ON:
            self._dirty_alarms[edge.source] = None

    # -- after each event --------------------------------------------------------------------

    def collect(self, event: Event) -> list[HistoryRecord]:
        """The records ``event`` caused, in a fixed order: alarms started/changed, links, alarms ended."""
        if not self._dirty_alarms and not self._dirty_causes:
            return []
        assert event.sequence is not None, "collect after the processor accepted the event"
        sequence = event.sequence
        time = event.received_at or event.sample_time
        graph = self.graph
        records: list[HistoryRecord] = []
        ended: list[HistoryRecord] = []
        for vitrage_id in self._dirty_alarms:
            vertex = graph.get_vertex(vitrage_id)
            known = self._active_alarms.get(vitrage_id)
            if is_active_alarm(vertex):
                assert vertex is not None
                summary = self.summarize(vertex)
                signature = summary.signature()
                if known is None:
                    records.append(AlarmRecord(RecordKind.STARTED, sequence, time, vitrage_id, summary))
                elif known != signature:
                    records.append(AlarmRecord(RecordKind.CHANGED, sequence, time, vitrage_id, summary))
                self._active_alarms[vitrage_id] = signature
            elif known is not None:
                del self._active_alarms[vitrage_id]
                ended.append(AlarmRecord(RecordKind.ENDED, sequence, time, vitrage_id, None))
        self._dirty_alarms.clear()
        for source, target in self._dirty_causes:
            edge = graph.get_edge(source, target, EdgeLabel.CAUSES)
            key = (source, target)
            active = edge is not None and _is_active_cause(edge)
            if active and key not in self._active_causes:
                self._active_causes.add(key)
                records.append(CauseRecord(RecordKind.STARTED, sequence, time, source, target))
            elif not active and key in self._active_causes:
                self._active_causes.discard(key)
                records.append(CauseRecord(RecordKind.ENDED, sequence, time, source, target))
        self._dirty_causes.clear()
        records.extend(ended)
        return records

    def summarize(self, vertex: Vertex) -> AlarmSummary:
        payload = alarm_properties(self.graph, vertex)
        deduced = vertex.vitrage_type == "vitrage"
        templates = tuple(self.raised_by(vertex)) if deduced and self.raised_by is not None else ()
        return AlarmSummary(
            name=vertex.name,
            vitrage_type=vertex.vitrage_type,
            severity=_text(vertex.get(VertexProperty.VITRAGE_OPERATIONAL_SEVERITY)),
            aggregated_severity=_text(vertex.get(VertexProperty.VITRAGE_AGGREGATED_SEVERITY)),
            state=vertex.state,
            project_id=vertex.project_id,
            resource_id=payload.get("vitrage_resource_id"),
            resource_type=payload.get("vitrage_resource_type"),
            resource_name=_text(payload.get("vitrage_resource_name")),
            resource_project_id=payload.get("vitrage_resource_project_id"),
            deduced=deduced,
            templates=templates,
            payload=payload,
        )


def _is_active_cause(edge: Edge) -> bool:
    return edge.label == EdgeLabel.CAUSES and not edge.vitrage_is_deleted


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


__all__ = [
    "AlarmRecord",
    "AlarmSummary",
    "CauseRecord",
    "HistoryRecord",
    "HistoryRecorder",
    "RaisedBy",
    "RecordKind",
    "is_active_alarm",
]
