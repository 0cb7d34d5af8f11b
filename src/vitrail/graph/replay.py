"""Replaying logged events: the fold again, with the numbers the log gave them.

A standby taking over and a reconstruction at a past time T both load a
snapshot and apply the logged events after it. A logged event was accepted
once, so it carries its sequence number; replaying it must give the processor
that number whatever happens:

* a gap in the log (a hole the persistors never filled, or events pruned
  between the snapshot and the rest) is stepped over: the processor continues
  at the next logged number;
* an event the processor now rejects (a datasource no longer configured) or
  takes for a duplicate is passed over, its number kept, so the following
  events still fit.

Pure: no I/O, no clock. What was stepped over is counted in the
:class:`ReplayReport` for the caller to log.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from vitrail.graph.events import Event
from vitrail.graph.processor import EventRejected, Processor


@dataclass(slots=True)
class ReplayReport:
    """What a replay did, accumulated over the batches given to :func:`replay`."""

    #: Events read from the log (applied, duplicate or passed over).
    replayed: int = 0
    #: Events passed over because the processor rejected them, by datasource.
    skipped: dict[str, int] = field(default_factory=dict)
    #: The first rejection reason of each datasource in :attr:`skipped`.
    reasons: dict[str, str] = field(default_factory=dict)
    #: Holes stepped over: (the sequence expected, the one found).
    gaps: list[tuple[int, int]] = field(default_factory=list)


def replay_event(processor: Processor, event: Event, report: ReplayReport) -> None:
    """Apply one logged event with its own sequence number, whatever came before it."""
    sequence = event.sequence
    if sequence is None:
        raise ValueError(f"event {event.event_id!r} has no sequence number: only logged events are replayed")
    report.replayed += 1
    if sequence != processor.sequence + 1:
        report.gaps.append((processor.sequence + 1, sequence))
        processor.sequence = sequence - 1
    try:
        done = processor.process(event)
    except EventRejected as exc:
        datasource = event.datasource
        report.skipped[datasource] = report.skipped.get(datasource, 0) + 1
        report.reasons.setdefault(datasource, str(exc))
        done = None
    if done is None:
        processor.sequence = sequence


def replay(processor: Processor, events: Iterable[Event], report: ReplayReport | None = None) -> ReplayReport:
    """Apply logged ``events`` in order (see the module docstring); return the report, updated."""
    report = report if report is not None else ReplayReport()
    for event in events:
        replay_event(processor, event, report)
    return report


__all__ = ["ReplayReport", "replay", "replay_event"]
