"""What the API offers on the alarm and RCA history (the tables the graph leader writes).

Alarm history follows Vitrage's ``GET /v1/alarm/history/``. RCA history answers
seed ``002``'s case: an application alarm caused by a host alarm that has
cleared since must still show the host alarm as its cause. The causal chain
is rebuilt from ``cause_history`` *as it was*: from the asked alarm's
occurrence, only the links that existed while it was active, then, for each
alarm reached, its occurrence during that link, and so on, both ways.
Alarms still active show their live properties (the graph's answer wins);
ended ones show what they were when last active, with their end.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from typing import Any

from vitrail.graph.events import format_timestamp
from vitrail.graph.queries import NotFound, Viewer
from vitrail.storage.history import CauseRow, HistoryQuery, HistoryStore

MAX_RCA_ALARMS = 1000
"""Most alarms one RCA-history answer holds (a guard against a runaway chain)."""

_OPEN = 2**63 - 1
"""The end sequence of an occurrence or link that has not ended."""


@dataclass(frozen=True, slots=True)
class _Occurrence:
    vitrage_id: str
    start: int
    end: int
    alarm: dict[str, Any]


class AlarmHistory:
    """Alarm history queries and RCA history, for one viewer at a time."""

    def __init__(self, store: HistoryStore) -> None:
        self.store = store

    async def list(self, query: HistoryQuery, viewer: Viewer, all_tenants: bool) -> list[dict[str, Any]]:
        """One page of history; raises :class:`~vitrail.storage.history.HistoryQueryError` on a bad query."""
        if not (all_tenants or viewer.is_local_operator):
            query = _for_project(query, viewer)
        return await self.store.query(query)

    async def show(self, history_id: int, viewer: Viewer) -> dict[str, Any]:
        """One history row with its changes; :class:`NotFound` when missing or not the viewer's."""
        alarm = await self.store.get(history_id)
        if alarm is None or not _visible(alarm, viewer, all_tenants=False):
            raise NotFound(f"alarm history row {history_id} does not exist")
        return alarm

    async def rca(
        self, alarm_id: str, viewer: Viewer, all_tenants: bool, live: dict[str, Any] | None
    ) -> dict[str, Any]:
        """The causal chain of ``alarm_id`` as it was, merged with the live answer ``live`` (if active).

        Raises :class:`NotFound` when the alarm is neither active nor in the history.
        """
        occurrences = await self.store.occurrences([alarm_id])
        if not occurrences and live is None:
            raise NotFound(f"alarm {alarm_id!r} does not exist (neither active nor in the history)")
        nodes: dict[str, dict[str, Any]] = {}
        links: dict[tuple[str, str], dict[str, Any]] = {}
        if occurrences:
            first = _occurrence(occurrences[-1])
            if not _visible(first.alarm, viewer, all_tenants) and live is None:
                raise NotFound(f"alarm {alarm_id!r} does not exist")
            await self._walk(first, nodes, links)
        return _merge(alarm_id, live, nodes, links, viewer, all_tenants)

    async def _walk(
        self,
        first: _Occurrence,
        nodes: dict[str, dict[str, Any]],
        links: dict[tuple[str, str], dict[str, Any]],
    ) -> None:
        """Breadth first over the links that overlapped each reached occurrence, both directions."""
        nodes[first.vitrage_id] = first.alarm
        frontier: deque[_Occurrence] = deque([first])
        seen = {first.vitrage_id}
        while frontier and len(nodes) < MAX_RCA_ALARMS:
            level = list(frontier)
            frontier.clear()
            ids = [occurrence.vitrage_id for occurrence in level]
            by_id = {occurrence.vitrage_id: occurrence for occurrence in level}
            reached: list[tuple[str, CauseRow]] = []
            for as_target in (True, False):
                for link in await self.store.causal_links(ids, as_target=as_target):
                    here = by_id[link.target_id if as_target else link.source_id]
                    if not _overlaps(link.start_sequence, _end(link.end_sequence), here.start, here.end):
                        continue
                    links.setdefault((link.source_id, link.target_id), _link_properties(link))
                    other = link.source_id if as_target else link.target_id
                    if other not in seen:
                        reached.append((other, link))
            if not reached:
                return
            candidates = await self.store.occurrences(sorted({other for other, _ in reached}))
            by_alarm: dict[str, list[_Occurrence]] = {}
            for row in candidates:
                occurrence = _occurrence(row)
                by_alarm.setdefault(occurrence.vitrage_id, []).append(occurrence)
            for other, link in reached:
                if other in seen:
                    continue
                during = [
                    o
                    for o in by_alarm.get(other, [])
                    if _overlaps(o.start, o.end, link.start_sequence, _end(link.end_sequence))
                ]
                if not during:
                    continue  # purged, or not written yet
                occurrence = during[-1]
                seen.add(other)
                nodes[other] = occurrence.alarm
                frontier.append(occurrence)
                if len(nodes) >= MAX_RCA_ALARMS:
                    return


def _for_project(query: HistoryQuery, viewer: Viewer) -> HistoryQuery:
    return replace(query, project_id=viewer.project_id or "", is_admin=viewer.is_admin)


def _visible(alarm: dict[str, Any], viewer: Viewer, all_tenants: bool) -> bool:
    """The live alarm list's rule: the alarm's project, else its resource's; none: admins only."""
    if all_tenants or viewer.is_local_operator:
        return True
    project = alarm.get("project_id") or alarm.get("vitrage_resource_project_id")
    if project is None:
        return viewer.is_admin
    return bool(project == viewer.project_id)


def _occurrence(alarm: dict[str, Any]) -> _Occurrence:
    return _Occurrence(alarm["vitrage_id"], int(alarm["start_sequence"]), _end(alarm.get("end_sequence")), alarm)


def _end(sequence: int | None) -> int:
    return _OPEN if sequence is None else int(sequence)


def _overlaps(start_a: int, end_a: int, start_b: int, end_b: int) -> bool:
    return start_a <= end_b and start_b <= end_a


def _link_properties(link: CauseRow) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "relationship_type": "causes",
        "vitrage_is_deleted": False,
        "start_timestamp": format_timestamp(link.start_time),
    }
    if link.end_time is not None:
        properties["end_timestamp"] = format_timestamp(link.end_time)
    return properties


def _merge(
    alarm_id: str,
    live: dict[str, Any] | None,
    history_nodes: dict[str, dict[str, Any]],
    history_links: dict[tuple[str, str], dict[str, Any]],
    viewer: Viewer,
    all_tenants: bool,
) -> dict[str, Any]:
    """The live node-link answer, plus what only the history knows; indexes renumbered."""
    nodes: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    links: dict[tuple[str, str], dict[str, Any]] = {}
    if live is not None:
        for node in live["nodes"]:
            index[node["vitrage_id"]] = len(nodes)
            nodes.append(dict(node))
        for link in live["links"]:
            key = (live["nodes"][link["source"]]["vitrage_id"], live["nodes"][link["target"]]["vitrage_id"])
            links[key] = {k: v for k, v in link.items() if k not in ("source", "target", "key")}
    for vitrage_id, alarm in history_nodes.items():
        if vitrage_id in index or not _visible(alarm, viewer, all_tenants):
            continue
        index[vitrage_id] = len(nodes)
        nodes.append(dict(alarm))
    for key, properties in history_links.items():
        if key in links:
            links[key] = {**properties, **links[key]}  # the live edge's properties, and when it began
        elif key[0] in index and key[1] in index:
            links[key] = properties
    for position, node in enumerate(nodes):
        node["graph_index"] = position
    return {
        "directed": True,
        "multigraph": True,
        "graph": {},
        "nodes": nodes,
        "links": [
            {**properties, "source": index[source], "target": index[target], "key": "causes"}
            for (source, target), properties in links.items()
        ],
        "inspected_index": index[alarm_id],
    }


__all__ = ["MAX_RCA_ALARMS", "AlarmHistory"]
