"""Tables and trees for people; JSON for scripts."""

from __future__ import annotations

from typing import Any

import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

_STATE_STYLES = {
    "OK": "green",
    "SUBOPTIMAL": "yellow",
    "TRANSIENT": "cyan",
    "ERROR": "bold red",
    "DELETED": "dim",
    "N/A": "dim",
    "CRITICAL": "bold red",
    "SEVERE": "red",
    "WARNING": "yellow",
}

RESOURCE_COLUMNS = (
    ("vitrage_id", "vitrage_id"),
    ("type", "vitrage_type"),
    ("id", "id"),
    ("name", "name"),
    ("state", "vitrage_aggregated_state"),
    ("operational", "vitrage_operational_state"),
    ("project", "project_id"),
)


def print_json(console: Console, data: Any) -> None:
    console.print_json(orjson.dumps(data).decode(), highlight=False)


def state_text(value: Any) -> Text:
    text = "" if value is None else str(value)
    return Text(text, style=_STATE_STYLES.get(text, ""))


def resource_table(rows: list[dict[str, Any]], title: str | None = None) -> Table:
    table = Table(title=title, show_lines=False, header_style="bold")
    for header, _ in RESOURCE_COLUMNS:
        table.add_column(header, overflow="fold", no_wrap=header == "vitrage_id")
    for row in rows:
        cells: list[Any] = []
        for header, key in RESOURCE_COLUMNS:
            value = row.get(key)
            cells.append(state_text(value) if header == "operational" else ("" if value is None else str(value)))
        table.add_row(*cells)
    return table


def topology_table(topology: dict[str, Any]) -> Table:
    nodes = sorted(
        topology.get("nodes", []),
        key=lambda n: (n.get("vitrage_category", ""), n.get("vitrage_type", ""), str(n.get("name", ""))),
    )
    table = resource_table(nodes, title=f"{len(nodes)} entities, {len(topology.get('links', []))} relationships")
    return table


def _label(node: dict[str, Any]) -> Text:
    label = Text()
    label.append(str(node.get("vitrage_type", "?")), style="bold")
    label.append(f" {node.get('name') or node.get('id')}")
    state = node.get("vitrage_operational_state") or node.get("vitrage_operational_severity")
    if state:
        label.append(" ")
        label.append_text(state_text(state))
    return label


def topology_tree(tree: dict[str, Any], max_children: int = 50) -> Tree:
    """A Rich tree of Vitrage's tree output; long child lists are elided."""
    if not tree:
        return Tree("(empty topology)")
    root = Tree(_label(tree))
    stack = [(tree, root)]
    while stack:
        node, branch = stack.pop()
        children = sorted(
            node.get("children", []), key=lambda c: (str(c.get("vitrage_type", "")), str(c.get("name", "")))
        )
        for child in children[:max_children]:
            sub = branch.add(_label(child))
            stack.append((child, sub))
        if len(children) > max_children:
            branch.add(Text(f"… {len(children) - max_children} more", style="dim"))
    return root


def key_value_table(data: dict[str, Any]) -> Table:
    table = Table(show_header=True, header_style="bold")
    table.add_column("field")
    table.add_column("value", overflow="fold")
    for key in sorted(data):
        value = data[key]
        shown = orjson.dumps(value).decode() if isinstance(value, dict | list) else str(value)
        table.add_row(key, state_text(value) if key.endswith("operational_state") else shown)
    return table


ALARM_COLUMNS = (
    ("vitrage_id", "vitrage_id"),
    ("type", "vitrage_type"),
    ("name", "name"),
    ("resource", "vitrage_resource_name"),
    ("resource type", "vitrage_resource_type"),
    ("severity", "vitrage_operational_severity"),
    ("since", "start_timestamp"),
)


def alarm_table(rows: list[dict[str, Any]], title: str | None = None) -> Table:
    table = Table(title=title, header_style="bold")
    for header, _ in ALARM_COLUMNS:
        table.add_column(header, overflow="fold", no_wrap=header == "vitrage_id")
    for row in rows:
        cells: list[Any] = []
        for header, key in ALARM_COLUMNS:
            value = row.get(key)
            if header == "resource" and value is None:
                value = row.get("vitrage_resource_id")
            cells.append(state_text(value) if header == "severity" else ("" if value is None else str(value)))
        table.add_row(*cells)
    return table


def _alarm_label(node: dict[str, Any], inspected: bool) -> Text:
    label = Text()
    label.append(str(node.get("name") or node.get("vitrage_id")), style="bold underline" if inspected else "bold")
    ended = node.get("end_timestamp")
    # An ended alarm (RCA history) reads OK as in Vitrage; the severity it had is the aggregated one.
    severity = node.get("vitrage_aggregated_severity" if ended else "vitrage_operational_severity")
    if severity:
        label.append(" ")
        label.append_text(state_text(severity))
    resource = node.get("vitrage_resource_name") or node.get("vitrage_resource_id")
    if resource:
        label.append(f" on {node.get('vitrage_resource_type', '')} {resource}", style="dim")
    if ended:
        label.append(f" (ended {ended})", style="dim")
    if inspected:
        label.append("  ← asked", style="cyan")
    return label


def rca_tree(data: dict[str, Any]) -> Tree:
    """Root causes at the top, their consequences below (following ``causes`` links)."""
    nodes = data.get("nodes", [])
    if not nodes:
        return Tree("(no alarm)")
    inspected = data.get("inspected_index", 0)
    children: dict[int, list[int]] = {i: [] for i in range(len(nodes))}
    has_cause: set[int] = set()
    for link in data.get("links", []):
        children[link["source"]].append(link["target"])
        has_cause.add(link["target"])
    roots = [i for i in range(len(nodes)) if i not in has_cause] or [inspected]
    top = Tree(Text("root cause" + ("s" if len(roots) > 1 else ""), style="bold"))
    placed: set[int] = set()
    stack = [(i, top) for i in reversed(roots)]
    while stack:
        index, parent = stack.pop()
        branch = parent.add(_alarm_label(nodes[index], index == inspected))
        if index in placed:
            continue
        placed.add(index)
        for child in reversed(children[index]):
            stack.append((child, branch))
    return top


# -- history: what changed between two times ---------------------------------------------

_DIFF_STYLES = {"added": "green", "removed": "red", "changed": "yellow"}


def _value_text(value: Any) -> str:
    """A property value as JSON writes it (strings bare)."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def diff_table(diff: dict[str, Any], kind: str) -> Table:
    """The ``kind`` ("resources" or "alarms") part of a ``/v1/history/diff`` answer: one row per entity."""
    counts = diff["summary"][kind]
    title = f"{kind}: {counts['added']} added, {counts['removed']} removed, {counts['changed']} changed"
    shown = sum(len(diff[kind][change]) for change in ("added", "removed", "changed"))
    if shown < sum(counts.values()):
        title += f" (showing {shown})"
    table = Table(title=title, header_style="bold")
    for column in ("", "vitrage_id", "type", "name", "state / changes"):
        table.add_column(column, overflow="fold", no_wrap=column == "vitrage_id")
    for change in ("added", "removed", "changed"):
        for entry in diff[kind][change]:
            if change == "changed":
                details = "\n".join(
                    f"{name}: {_value_text(values['from'])} → {_value_text(values['to'])}"
                    for name, values in entry["changes"].items()
                )
            else:
                state = entry.get("vitrage_operational_severity") or entry.get("vitrage_operational_state")
                details = "" if state is None else str(state)
            table.add_row(
                Text(change, style=_DIFF_STYLES[change]),
                str(entry.get("vitrage_id", "")),
                str(entry.get("vitrage_type") or ""),
                str(entry.get("name") or ""),
                details,
            )
    return table


HISTORY_COLUMNS = (
    ("history_id", "history_id"),
    ("name", "name"),
    ("type", "vitrage_type"),
    ("severity", "vitrage_aggregated_severity"),
    ("resource", "vitrage_resource_name"),
    ("started", "history_start"),
    ("ended", "end_timestamp"),
)


def alarm_history_table(rows: list[dict[str, Any]], title: str | None = None) -> Table:
    """Alarm history rows: when each occurrence began and ended (``active`` while it has not)."""
    table = Table(title=title, header_style="bold")
    for header, _ in HISTORY_COLUMNS:
        table.add_column(header, overflow="fold")
    for row in rows:
        cells: list[Any] = []
        for header, key in HISTORY_COLUMNS:
            value = row.get(key)
            if header == "resource" and value is None:
                value = row.get("vitrage_resource_id")
            if header == "ended" and value is None:
                cells.append(Text("active", style="bold red"))
            elif header == "severity":
                cells.append(state_text(value))
            else:
                cells.append("" if value is None else str(value))
        table.add_row(*cells)
    return table


TARGET_COLUMNS = (
    ("id", "id"),
    ("name", "name"),
    ("kind", "kind"),
    ("address", "address"),
    ("interval", "interval"),
    ("timeout", "timeout"),
    ("threshold", "failure_threshold"),
    ("entity", "entity_id"),
    ("status", "status"),
    ("action_id", "action_id"),
)
_TARGET_STATUS_STYLES = {"reachable": "green", "unreachable": "bold red", "unknown": "dim"}


def monitor_target_table(rows: list[dict[str, Any]]) -> Table:
    """Monitor targets, one a row, their status coloured."""
    table = Table(title=f"{len(rows)} monitor targets", header_style="bold")
    for header, _ in TARGET_COLUMNS:
        table.add_column(header, overflow="fold", no_wrap=header == "id")
    for row in rows:
        cells: list[Any] = []
        for header, key in TARGET_COLUMNS:
            value = row.get(key)
            text = "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
            cells.append(Text(text, style=_TARGET_STATUS_STYLES.get(text, "")) if header == "status" else text)
        table.add_row(*cells)
    return table
