"""A processor snapshot as stored bytes: canonical state, compressed.

A snapshot is :meth:`Processor.state_document` encoded exactly as
:meth:`Processor.dump` encodes it (orjson, sorted keys), then zlib-compressed.
Restoring decompresses, parses and hands the document to :meth:`Processor.load`,
so a restored processor dumps to the same bytes as the one that was encoded.

The encoding is named by :data:`SNAPSHOT_FORMAT`, stored next to the bytes, so
a later encoding (another compressor, another layout) can be introduced while
old snapshots stay readable. zlib carries an Adler-32 checksum of the raw
bytes, so a corrupt or truncated snapshot is refused on decode rather than
loaded as a wrong state.

Compression level: measured on the simulator cloud at 110k entities (20.4 MB
of JSON, mostly random uuids that no level compresses), level 1 takes 0.14 s
for 6.16 MB, level 3 0.23 s for 5.90 MB, level 6 (zlib's default) 0.55 s for
5.61 MB and level 9 1.7 s for 5.57 MB; decompression takes 0.065 s whatever the
level. Beyond level 1 every 4-10 % of size costs 1.6-12 times the compression
time, and that time is spent while a forked child holds a copy-on-write image of
the graph (see :mod:`vitrail.services.snapshotting`), or, where fork is not
available, while the event loop is stalled. Hence :data:`COMPRESSION_LEVEL` = 1.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from vitrail.graph.entity_graph import EntityGraph
from vitrail.graph.gcpause import paused_gc
from vitrail.graph.processor import STATE_FORMAT, Processor, ProcessorConfig, Reactor
from vitrail.graph.states import StateTable
from vitrail.graph.updates import Transformer

#: The encoding of :attr:`EncodedState.data`: the processor state document as
#: canonical JSON (``vitrail.processor`` document), zlib-compressed, version 1.
SNAPSHOT_FORMAT = "vitrail.state+json+zlib/1"
#: zlib level; see the module docstring for the measurements behind it.
COMPRESSION_LEVEL = 1


class SnapshotFormatError(ValueError):
    """The bytes are not a snapshot this version can decode."""


@dataclass(frozen=True, slots=True)
class EncodedState:
    """A compressed snapshot and what it holds (stored alongside, for listing without decoding)."""

    data: bytes
    #: Size of the JSON before compression (what decoding will allocate).
    raw_bytes: int
    #: Sequence number of the last event folded into the state.
    sequence: int
    entities: int
    relationships: int
    format: str = SNAPSHOT_FORMAT


def encode_state(processor: Processor) -> EncodedState:
    """The processor's whole state as a compressed snapshot.

    The JSON is byte-identical to :meth:`Processor.dump` (same document, same
    options), so a snapshot can be checked against a live dump after
    decompression alone.
    """
    # The document is built with the cyclic collector paused: the recent event
    # ids alone are up to 100k small lists, and collections walking a large
    # heap would dominate the encode time (and, in a forked child, copy pages).
    with paused_gc():
        document = processor.state_document()
        raw = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
        graph = document["graph"]
        entities, relationships = int(graph["vertex_count"]), int(graph["edge_count"])
        del document
    return EncodedState(
        data=zlib.compress(raw, COMPRESSION_LEVEL),
        raw_bytes=len(raw),
        sequence=processor.sequence,
        entities=entities,
        relationships=relationships,
    )


def decode_state(data: bytes, format: str) -> dict[str, Any]:
    """The state document stored in ``data``, ready for :meth:`Processor.load`.

    Raises :class:`SnapshotFormatError` (a ``ValueError``) for a format this
    version does not know and for bytes that do not decompress, do not parse
    or are not a processor state.
    """
    if format != SNAPSHOT_FORMAT:
        raise SnapshotFormatError(f"unknown snapshot format {format!r} (this version reads {SNAPSHOT_FORMAT!r})")
    try:
        raw = zlib.decompress(data)
    except zlib.error as exc:
        raise SnapshotFormatError(f"corrupt snapshot: the compressed data does not decompress ({exc})") from None
    try:
        with paused_gc():
            document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SnapshotFormatError(f"corrupt snapshot: the decompressed data is not JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != STATE_FORMAT:
        raise SnapshotFormatError(f"corrupt snapshot: the data is not a {STATE_FORMAT!r} state document")
    return document


def restore_processor(
    data: bytes,
    format: str,
    transformers: Mapping[str, Transformer],
    states: StateTable | None = None,
    config: ProcessorConfig | None = None,
    reactor: Callable[[EntityGraph], Reactor] | None = None,
) -> Processor:
    """A processor in exactly the state a snapshot captured (see :meth:`Processor.load`).

    The collector stays paused for the whole load: :meth:`Processor.load`
    rebuilds the graph object by object, and collections walking the growing
    heap would more than double the time (see :mod:`vitrail.graph.gcpause`).
    """
    with paused_gc():
        return Processor.load(decode_state(data, format), transformers, states, config, reactor)
