"""The processor: the graph as a fold over an ordered log of events.

``state(n) = apply(state(n-1), event(n))``. The processor gives every accepted
event the next sequence number, ignores an event id it has already applied,
transforms the event with its datasource's transformer and applies the result
to the :class:`EntityGraph`. Nothing here reads the clock, draws random
numbers or depends on hash order, so the same events in the same order give the
same state byte for byte: snapshots, replay, failover and reconstruction at a
time T all rest on that.

Rules it applies (Vitrage's, made exact):

* an update older than what the vertex already has (``vitrage_sample_timestamp``)
  changes nothing, so late or repeated deliveries cannot roll state back;
* neighbours named before they are known become placeholders and are completed
  when their own datasource reports them; a placeholder left without edges is
  removed;
* a datasource only removes what it owns: vertices it reported and edges it
  asserted;
* consistency by rounds: when a ``get_all`` round of a datasource ends, its
  vertices missing from the last ``consistency_rounds`` rounds, and not updated
  since the first of them began, are deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from vitrail.graph.canonical import graph_document, graph_from_document
from vitrail.graph.entity_graph import EntityGraph
from vitrail.graph.events import Event, EventAction
from vitrail.graph.identity import vitrage_id_for
from vitrail.graph.lookup import PropertyIndex
from vitrail.graph.model import Vertex
from vitrail.graph.properties import Category, VertexProperty
from vitrail.graph.states import StateTable
from vitrail.graph.updates import EntityUpdate, NeighborRef, Transformer, TransformError

STATE_FORMAT = "vitrail.processor"
#: Property of an alarm: when it began.
START_TIMESTAMP = "start_timestamp"
STATE_VERSION = 1
#: Neighbour vitrage ids remembered (see Processor._neighbor_id).
_NEIGHBOR_IDS = 65_536

#: Properties a datasource may not set: the processor owns them.
_RESERVED = frozenset(
    (
        VertexProperty.VITRAGE_ID,
        VertexProperty.VITRAGE_CATEGORY,
        VertexProperty.VITRAGE_TYPE,
        VertexProperty.ID,
        VertexProperty.VITRAGE_STATE,
        VertexProperty.VITRAGE_AGGREGATED_STATE,
        VertexProperty.VITRAGE_OPERATIONAL_STATE,
        VertexProperty.VITRAGE_AGGREGATED_SEVERITY,
        VertexProperty.VITRAGE_OPERATIONAL_SEVERITY,
        VertexProperty.VITRAGE_SAMPLE_TIMESTAMP,
        VertexProperty.UPDATE_TIMESTAMP,
        VertexProperty.VITRAGE_IS_DELETED,
        VertexProperty.VITRAGE_IS_PLACEHOLDER,
        VertexProperty.VITRAGE_DATASOURCE_NAME,
    )
)


class Reactor(Protocol):
    """Something that reacts inside the fold after every event: the template evaluator.

    It owns the events of one datasource (template additions and deletions), and
    its state is part of the processor's, so a replay reproduces what it did.
    """

    datasource: str

    def check(self, event: Event) -> None:
        """Raise :class:`TransformError` for one of its events that cannot be applied."""

    def handle(self, event: Event) -> None:
        """Apply one of its own events."""

    def react(self, event: Event) -> None:
        """Bring the graph up to date after ``event`` was applied."""

    def state_document(self) -> dict[str, Any]: ...

    def load_state(self, document: dict[str, Any]) -> None: ...


class EventRejected(ValueError):
    """The event cannot be applied (unknown datasource, bad payload). Not logged,
    no sequence number: the caller dead-letters it."""


class SequenceGap(RuntimeError):
    """A replayed event does not carry the next sequence number."""


@dataclass(slots=True)
class ProcessorStats:
    """Counters since the processor was created (not part of its state)."""

    applied: int = 0
    duplicates: int = 0
    stale: int = 0
    rejected: int = 0
    deleted_by_consistency: int = 0


class RecentEventIds:
    """The ids of the last ``capacity`` accepted change events, for duplicate detection.

    A ring plus a dict: adding and evicting are O(1), and the order (needed for
    a canonical dump) is the order of acceptance. Snapshot events do not go
    here: their rounds make them exact to deduplicate (see
    :meth:`Processor._is_duplicate`), so a 100k-entity ``get_all`` does not push
    the recent changes out of the window, nor cost memory once its round ends.
    """

    __slots__ = ("_ids", "_position", "_ring", "capacity")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("dedup window must hold at least one event id")
        self.capacity = capacity
        self._ring: list[str | None] = [None] * capacity
        self._ids: dict[str, int] = {}
        self._position = 0

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, event_id: str, sequence: int) -> None:
        slot = self._position % self.capacity
        old = self._ring[slot]
        if old is not None:
            self._ids.pop(old, None)
        self._ring[slot] = event_id
        self._ids[event_id] = sequence
        self._position += 1

    def in_order(self) -> list[list[Any]]:
        """``[[event_id, sequence], ...]`` oldest first."""
        start = self._position % self.capacity if self._position >= self.capacity else 0
        ring = self._ring[start:] + self._ring[:start]
        return [[event_id, self._ids[event_id]] for event_id in ring if event_id is not None]


@dataclass(slots=True)
class ProcessorConfig:
    consistency_rounds: int = 2
    dedup_window: int = 100_000


@dataclass(slots=True)
class _RoundMark:
    round: int
    started: str


@dataclass(slots=True)
class _Rounds:
    """The last completed ``get_all`` rounds of one datasource, oldest first."""

    marks: list[_RoundMark] = field(default_factory=list)


class Processor:
    """Applies events to an :class:`EntityGraph`; see the module docstring."""

    def __init__(
        self,
        transformers: Mapping[str, Transformer],
        states: StateTable | None = None,
        config: ProcessorConfig | None = None,
        graph: EntityGraph | None = None,
    ) -> None:
        self.transformers = dict(transformers)
        self.states = states or StateTable()
        self.config = config or ProcessorConfig()
        if self.config.consistency_rounds < 1:
            raise ValueError("consistency_rounds must be at least 1")
        self.graph = graph if graph is not None else EntityGraph()
        self.sequence = 0
        self.last_event_time: str | None = None
        self.recent = RecentEventIds(self.config.dedup_window)
        self.rounds: dict[str, _Rounds] = {}
        # Snapshot event ids of rounds that have not ended: (datasource, round) -> {id: sequence}.
        self.open_rounds: dict[tuple[str, int], dict[str, int]] = {}
        self.stats = ProcessorStats()
        self._neighbor_ids: dict[tuple[str, str, str], str] = {}
        self.lookups = PropertyIndex(self.graph)
        self.reactor: Reactor | None = None
        self.followers: tuple[Callable[[Event], None], ...] = ()

    def attach(self, reactor: Reactor) -> None:
        """Let ``reactor`` (the evaluator) take part in the fold from now on."""
        self.reactor = reactor

    def follow(self, callback: Callable[[Event], None]) -> None:
        """Call ``callback(event)`` after every applied event, once the evaluator has reacted.

        For what is derived from the fold without being part of its state (the
        alarm history): it must not change the graph.
        """
        self.followers = (*self.followers, callback)

    # -- the fold ------------------------------------------------------------------

    def process(self, event: Event) -> Event | None:
        """Apply ``event``; return it with its sequence number, None for a duplicate.

        An event that already carries a sequence number (replay from the log) must
        carry exactly the next one. Raises :class:`EventRejected` for an event that
        cannot be applied; the graph is then unchanged.
        """
        if self._is_duplicate(event):
            self.stats.duplicates += 1
            return None
        if event.sequence is not None and event.sequence != self.sequence + 1:
            raise SequenceGap(f"event {event.event_id!r} has sequence {event.sequence}, expected {self.sequence + 1}")
        reactor = self.reactor
        own = reactor is not None and event.datasource == reactor.datasource
        if own:
            updates: list[EntityUpdate] = []
            try:
                reactor.check(event)  # type: ignore[union-attr]
            except TransformError as exc:
                self.stats.rejected += 1
                raise EventRejected(f"event {event.event_id!r} from {event.datasource}: {exc}") from None
        elif event.action is EventAction.ROUND_END:
            updates = []
            if event.round is None:
                raise EventRejected(f"event {event.event_id!r}: round_end without a round")
        else:
            transformer = self.transformers.get(event.datasource)
            if transformer is None:
                self.stats.rejected += 1
                raise EventRejected(f"event {event.event_id!r}: no datasource named {event.datasource!r}")
            try:
                updates = transformer.transform(event)
            except TransformError as exc:
                self.stats.rejected += 1
                raise EventRejected(f"event {event.event_id!r} from {event.datasource}: {exc}") from None
            if event.action is EventAction.SNAPSHOT and event.round is None:
                self.stats.rejected += 1
                raise EventRejected(f"event {event.event_id!r}: snapshot without a round")
        self.sequence += 1
        event.sequence = self.sequence
        if event.action is EventAction.SNAPSHOT:
            assert event.round is not None
            self.open_rounds.setdefault((event.datasource, event.round), {})[event.event_id] = self.sequence
        elif event.action is not EventAction.ROUND_END:
            self.recent.add(event.event_id, self.sequence)
        self.last_event_time = event.received_at or event.sample_time
        if own:
            reactor.handle(event)  # type: ignore[union-attr]
        elif event.action is EventAction.ROUND_END:
            self._end_round(event)
        else:
            for update in updates:
                self._apply(event, update)
        if reactor is not None:
            reactor.react(event)
        for follower in self.followers:
            follower(event)
        self.stats.applied += 1
        return event

    def _last_round(self, datasource: str) -> int | None:
        rounds = self.rounds.get(datasource)
        return rounds.marks[-1].round if rounds and rounds.marks else None

    def _is_duplicate(self, event: Event) -> bool:
        """Was this event applied already (or is it a late copy of a finished round)?

        Change events: their id is in the recent window. Snapshot events and round
        ends: their round has ended (a round's events all come before its end), or
        their id was already applied in the round that is still open.
        """
        action = event.action
        if action is EventAction.SNAPSHOT or action is EventAction.ROUND_END:
            if event.round is None:
                return False  # rejected later, with a reason
            last = self._last_round(event.datasource)
            if last is not None and event.round <= last:
                return True
            if action is EventAction.ROUND_END:
                return False
            seen = self.open_rounds.get((event.datasource, event.round))
            return seen is not None and event.event_id in seen
        return event.event_id in self.recent

    def process_many(self, events: Iterable[Event]) -> list[Event]:
        """Apply events in order; return the accepted ones. Rejections propagate."""
        accepted = []
        for event in events:
            done = self.process(event)
            if done is not None:
                accepted.append(done)
        return accepted

    # -- applying one entity update --------------------------------------------------

    def _apply(self, event: Event, update: EntityUpdate) -> None:
        vitrage_id = vitrage_id_for(update.category, update.vitrage_type, update.id)
        vertex = self.graph.get_vertex(vitrage_id)
        if update.delete or event.action is EventAction.DELETE:
            self._delete(vertex, event)
            return
        datasource = event.datasource
        sample_time = event.sample_time
        created = vertex is None
        if vertex is None:
            vertex = self._create(vitrage_id, update, datasource, sample_time)
            owned = True
        else:
            is_real = not vertex.vitrage_is_placeholder
            foreign = is_real and vertex.vitrage_datasource_name != datasource
            if foreign and update.weak:
                # Another datasource owns the entity: its properties stay; only
                # the edges this datasource asserts for it change.
                owned = False
            else:
                # Sample times are compared only within one datasource: clocks and
                # schedules of different datasources say nothing about each other.
                stamp = vertex.vitrage_sample_timestamp
                if not foreign and is_real and stamp is not None and stamp > sample_time:
                    self.stats.stale += 1
                    if event.action is EventAction.SNAPSHOT:
                        vertex.round = max(vertex.round or 0, event.round or 0)
                    return
                owned = True
                self._update(vertex, update, datasource, sample_time)
        if owned and event.action is EventAction.SNAPSHOT:
            vertex.round = max(vertex.round or 0, event.round or 0)
        if update.neighbors is not None:
            self._link(vertex, update.neighbors, datasource, sample_time, withdraw=not created)

    def _create(self, vitrage_id: str, update: EntityUpdate, datasource: str, sample_time: str) -> Vertex:
        properties = update.properties
        if not _RESERVED.isdisjoint(properties):
            properties = {k: v for k, v in properties.items() if k not in _RESERVED}
        vertex = Vertex(vitrage_id, properties)
        vertex.vitrage_category = update.category
        vertex.vitrage_type = update.vitrage_type
        vertex.id = update.id
        vertex.vitrage_datasource_name = datasource
        vertex.vitrage_sample_timestamp = sample_time
        vertex.update_timestamp = update.update_timestamp or sample_time
        if update.category == Category.ALARM and vertex.get(START_TIMESTAMP) is None:
            # When the alarm began, kept while it stays active (alarm lists sort by it).
            vertex.set(START_TIMESTAMP, vertex.update_timestamp)
        self._aggregate(vertex)
        self.graph.add_vertex(vertex)
        return vertex

    def _update(self, vertex: Vertex, update: EntityUpdate, datasource: str, sample_time: str) -> None:
        changes: dict[str, Any] = {name: value for name, value in update.properties.items() if name not in _RESERVED}
        changes[VertexProperty.VITRAGE_IS_PLACEHOLDER] = False
        changes[VertexProperty.VITRAGE_DATASOURCE_NAME] = datasource
        changes[VertexProperty.VITRAGE_SAMPLE_TIMESTAMP] = sample_time
        changes[VertexProperty.UPDATE_TIMESTAMP] = update.update_timestamp or sample_time
        changes.update(self._aggregated_values(vertex, changes))
        self.graph.update_vertex(vertex.vitrage_id, changes)

    def _aggregated_values(self, vertex: Vertex, changes: Mapping[str, Any]) -> dict[str, Any]:
        vtype = vertex.vitrage_type
        if vertex.vitrage_category == Category.ALARM:
            severity = changes.get(VertexProperty.SEVERITY, vertex.get(VertexProperty.SEVERITY))
            deduced = changes.get(VertexProperty.VITRAGE_SEVERITY, vertex.get(VertexProperty.VITRAGE_SEVERITY))
            agg, operational = self.states.aggregate(vtype, severity, deduced)
            return {
                VertexProperty.VITRAGE_AGGREGATED_SEVERITY: agg,
                VertexProperty.VITRAGE_OPERATIONAL_SEVERITY: operational,
            }
        state = changes.get(VertexProperty.STATE, vertex.state)
        deduced = changes.get(VertexProperty.VITRAGE_STATE, vertex.vitrage_state)
        agg, operational = self.states.aggregate(vtype, state, deduced)
        return {
            VertexProperty.VITRAGE_AGGREGATED_STATE: agg,
            VertexProperty.VITRAGE_OPERATIONAL_STATE: operational,
        }

    def _aggregate(self, vertex: Vertex) -> None:
        """Set the aggregated values on a vertex that is not in the graph yet."""
        if vertex.vitrage_category == Category.ALARM:
            for name, value in self._aggregated_values(vertex, {}).items():
                vertex.set(name, value)
            return
        agg, operational = self.states.aggregate(vertex.vitrage_type, vertex.state, vertex.vitrage_state)
        vertex.vitrage_aggregated_state = agg
        vertex.vitrage_operational_state = operational

    def _neighbor_id(self, ref: NeighborRef) -> str:
        if ref.vitrage_id is not None:
            return ref.vitrage_id
        if ref.match is not None:
            found = self.lookups.find(ref.category, ref.vitrage_type, ref.match[0], ref.match[1])
            if found is not None:
                return found
        # Neighbours repeat (every instance names its host): a cache saves the
        # SHA-1. Bounded (a few MB at most), so it costs nothing per entity; large
        # enough for the hosts of a 10,000-host cloud (4,096 missed nearly every
        # time there: a tenth of a replay's time, measured).
        key = (ref.category, ref.vitrage_type, ref.id)
        cached = self._neighbor_ids.get(key)
        if cached is None:
            if len(self._neighbor_ids) >= _NEIGHBOR_IDS:
                self._neighbor_ids.clear()
            cached = self._neighbor_ids[key] = vitrage_id_for(ref.category, ref.vitrage_type, ref.id)
        return cached

    def _link(
        self, vertex: Vertex, neighbors: list[NeighborRef], datasource: str, sample_time: str, withdraw: bool
    ) -> None:
        graph = self.graph
        vitrage_id = vertex.vitrage_id
        wanted: set[tuple[str, str, str]] = set()  # membership only, never iterated
        for ref in neighbors:
            other_id = self._neighbor_id(ref)
            if other_id not in graph:
                if ref.vitrage_id is not None:
                    continue  # a vertex known only by its id cannot be a placeholder
                self._create_placeholder(other_id, ref, sample_time)
            if ref.outgoing:
                edge = graph.ensure_edge(vitrage_id, other_id, ref.label, sample_time, datasource, vitrage_id)
            else:
                edge = graph.ensure_edge(other_id, vitrage_id, ref.label, sample_time, datasource, vitrage_id)
            if withdraw:
                wanted.add((edge.source, edge.target, edge.label))
        if withdraw:
            self._withdraw_edges(vertex, datasource, keep=wanted)

    def _withdraw_edges(self, vertex: Vertex, datasource: str, keep: set[tuple[str, str, str]] | None = None) -> None:
        """Remove the edges ``vertex`` asserted through ``datasource`` (except ``keep``)."""
        vitrage_id = vertex.vitrage_id
        obsolete = [
            edge
            for edge in (*vertex.out_edges, *vertex.in_edges)
            if edge.asserted_by == vitrage_id
            and edge.owner == datasource
            and (keep is None or (edge.source, edge.target, edge.label) not in keep)
        ]
        for edge in obsolete:
            self.graph.remove_edge(edge.source, edge.target, edge.label)
            self._drop_if_orphan_placeholder(edge.other(vitrage_id))

    def _create_placeholder(self, vitrage_id: str, ref: NeighborRef, sample_time: str) -> None:
        vertex = Vertex(vitrage_id)
        vertex.vitrage_category = ref.category
        vertex.vitrage_type = ref.vitrage_type
        vertex.id = ref.id
        vertex.vitrage_is_placeholder = True
        vertex.vitrage_sample_timestamp = sample_time
        vertex.update_timestamp = sample_time
        if ref.properties:
            for name, value in ref.properties.items():
                if name not in _RESERVED and value is not None:
                    vertex.set(name, value)
        self._aggregate(vertex)
        self.graph.add_vertex(vertex)

    def _drop_if_orphan_placeholder(self, vitrage_id: str) -> None:
        vertex = self.graph.get_vertex(vitrage_id)
        if vertex is not None and vertex.vitrage_is_placeholder and not vertex.out_edges and not vertex.in_edges:
            self.graph.remove_vertex(vitrage_id)

    def _delete(self, vertex: Vertex | None, event: Event) -> None:
        if vertex is None:
            return
        if vertex.vitrage_is_placeholder or vertex.vitrage_datasource_name == event.datasource:
            stamp = vertex.vitrage_sample_timestamp
            if not vertex.vitrage_is_placeholder and stamp is not None and stamp > event.sample_time:
                self.stats.stale += 1
                return
            self._remove(vertex)
            return
        # Not ours to delete: withdraw only the edges we asserted for it.
        self._withdraw_edges(vertex, event.datasource)

    def _remove(self, vertex: Vertex) -> None:
        neighbors = [e.other(vertex.vitrage_id) for e in (*vertex.out_edges, *vertex.in_edges)]
        self.graph.remove_vertex(vertex.vitrage_id)
        for other_id in neighbors:
            if other_id != vertex.vitrage_id:
                self._drop_if_orphan_placeholder(other_id)

    def _end_round(self, event: Event) -> None:
        assert event.round is not None
        rounds = self.rounds.setdefault(event.datasource, _Rounds())
        rounds.marks.append(_RoundMark(event.round, event.sample_time))
        # This round and any older one that never ended are closed: their late events are duplicates.
        for key in [k for k in self.open_rounds if k[0] == event.datasource and k[1] <= event.round]:
            del self.open_rounds[key]
        keep = self.config.consistency_rounds
        if len(rounds.marks) > keep:
            del rounds.marks[: len(rounds.marks) - keep]
        if len(rounds.marks) < keep:
            return
        oldest = rounds.marks[0]
        datasource = event.datasource
        stale = sorted(
            v.vitrage_id
            for v in self.graph.vertices()
            if v.vitrage_datasource_name == datasource
            and not v.vitrage_is_placeholder
            and (v.round is None or v.round < oldest.round)
            and (v.vitrage_sample_timestamp is None or v.vitrage_sample_timestamp < oldest.started)
        )
        for vitrage_id in stale:
            vertex = self.graph.get_vertex(vitrage_id)
            if vertex is not None:
                self._remove(vertex)
                self.stats.deleted_by_consistency += 1

    # -- state as data ---------------------------------------------------------------

    def state_document(self) -> dict[str, Any]:
        """Everything the fold depends on, as canonical plain data."""
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "sequence": self.sequence,
            "last_event_time": self.last_event_time,
            "rounds": {ds: [[m.round, m.started] for m in r.marks] for ds, r in sorted(self.rounds.items())},
            "recent_event_ids": self.recent.in_order(),
            "dedup_window": self.recent.capacity,
            "open_rounds": [
                [ds, round_id, sorted(ids.items(), key=lambda item: item[1])]
                for (ds, round_id), ids in sorted(self.open_rounds.items())
            ],
            "graph": graph_document(self.graph),
            "reactor": self.reactor.state_document() if self.reactor is not None else None,
        }

    def dump(self) -> bytes:
        """Canonical bytes of the whole processor state (graph included)."""
        return orjson.dumps(self.state_document(), option=orjson.OPT_SORT_KEYS)

    def graph_dump(self) -> bytes:
        """Canonical bytes of the graph alone."""
        return orjson.dumps(graph_document(self.graph), option=orjson.OPT_SORT_KEYS)

    @classmethod
    def load(
        cls,
        data: bytes | dict[str, Any],
        transformers: Mapping[str, Transformer],
        states: StateTable | None = None,
        config: ProcessorConfig | None = None,
        reactor: Callable[[EntityGraph], Reactor] | None = None,
    ) -> Processor:
        """A processor in exactly the state :meth:`dump` captured.

        ``reactor`` builds the evaluator for the loaded graph; its state is restored too.
        """
        document = orjson.loads(data) if isinstance(data, bytes | str) else data
        if not isinstance(document, dict) or document.get("format") != STATE_FORMAT:
            raise ValueError("not a vitrail processor state (missing 'format': 'vitrail.processor')")
        if document.get("version") != STATE_VERSION:
            raise ValueError(f"processor state version {document.get('version')!r} is not supported")
        config = config or ProcessorConfig()
        processor = cls(transformers, states, config, graph_from_document(document["graph"]))
        processor.sequence = int(document["sequence"])
        processor.last_event_time = document.get("last_event_time")
        for ds, marks in document["rounds"].items():
            processor.rounds[ds] = _Rounds([_RoundMark(int(r), str(s)) for r, s in marks])
        for event_id, sequence in document["recent_event_ids"]:
            processor.recent.add(event_id, int(sequence))
        for ds, round_id, ids in document.get("open_rounds", []):
            processor.open_rounds[(ds, int(round_id))] = {event_id: int(seq) for event_id, seq in ids}
        if reactor is not None:
            processor.attach(reactor(processor.graph))
            if document.get("reactor") is not None:
                processor.reactor.load_state(document["reactor"])  # type: ignore[union-attr]
        return processor
