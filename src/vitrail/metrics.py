"""Prometheus metrics of every Vitrail component, exposed at ``/metrics``."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_APPLIED = Counter("vitrail_events_applied_total", "Events accepted and applied to the graph")
EVENTS_DUPLICATE = Counter("vitrail_events_duplicate_total", "Events ignored because their id was already applied")
EVENTS_REJECTED = Counter(
    "vitrail_events_rejected_total", "Events that could not be applied (bad payload)", ["datasource"]
)
EVENTS_LOGGED = Counter("vitrail_events_logged_total", "Events written to the event log")
EVENT_LOG_FAILURES = Counter("vitrail_event_log_failures_total", "Failed attempts to write the event log")
APPLY_SECONDS = Histogram(
    "vitrail_apply_chunk_seconds",
    "Time to apply one chunk of events (the longest the API can wait on the graph)",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
GRAPH_VERTICES = Gauge("vitrail_graph_vertices", "Vertices in the entity graph")
GRAPH_EDGES = Gauge("vitrail_graph_edges", "Edges in the entity graph")
GRAPH_SEQUENCE = Gauge("vitrail_graph_sequence", "Sequence number of the last applied event")
API_REQUESTS = Counter("vitrail_api_requests_total", "API requests", ["method", "route", "status"])
API_SECONDS = Histogram(
    "vitrail_api_request_seconds",
    "API request latency",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
ALERTS_UNMAPPED = Counter(
    "vitrail_alerts_unmapped_total",
    "Alertmanager alerts whose labels named no resource (attached to a prometheus.target placeholder)",
)
ALARMS_RECEIVED = Counter("vitrail_alarm_events_received_total", "Alarm events posted to the API", ["datasource"])
EVENTS_UNPARSABLE = Counter(
    "vitrail_events_unparsable_total", "Messages or records on the bus that are not events (logged, dropped)"
)
ROUNDS_EXPIRED = Counter("vitrail_get_all_rounds_expired_total", "get_all rounds whose end never arrived (asked again)")
NOTIFICATIONS_RECEIVED = Counter(
    "vitrail_notifications_received_total", "OpenStack notifications taken from RabbitMQ by the notifications listener"
)
NOTIFICATIONS_IGNORED = Counter(
    "vitrail_notifications_ignored_total",
    "Valid notifications that map to nothing (event_type: another service; binary: not nova-compute; "
    "format: a notification format turned off)",
    ["reason"],
)
NOTIFICATIONS_UNPARSABLE = Counter(
    "vitrail_notifications_unparsable_total",
    "Notifications that could not be parsed (logged with the reason and the raw body, acked, never requeued)",
)
NOTIFICATION_PUBLISH_FAILURES = Counter(
    "vitrail_notification_publish_failures_total",
    "Failed attempts to publish a batch of notification events to the event bus (retried with backoff)",
)

# -- durability: persistor, dead letters, snapshots, leadership ----------------------------------
DEAD_LETTERS = Counter("vitrail_dead_letters_total", "Messages or rows kept as dead letters (never requeued)", ["role"])
PERSISTOR_EVENTS = Counter("vitrail_persistor_events_stored_total", "Events the persistor wrote to the event log")
PERSISTOR_BATCHES = Counter("vitrail_persistor_batches_total", "Batches the persistor committed")
PERSISTOR_BATCH_SECONDS = Histogram(
    "vitrail_persistor_batch_seconds",
    "Time to write one batch to the database (one transaction)",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
PERSISTOR_FENCED = Counter(
    "vitrail_persistor_fenced_events_total",
    "Events of a former graph leader (older epoch) discarded: their inputs go to the new leader",
)
PERSISTOR_PAUSED = Gauge(
    "vitrail_persistor_paused", "1 while the persistor waits for the database to answer again (consumption paused)"
)
PERSISTOR_RETRIES = Counter(
    "vitrail_persistor_retries_total", "Batches given back to the bus (database down, or a gap in the sequence)"
)
GRAPH_LEADER = Gauge("vitrail_graph_leader", "1 while this process is the active graph, 0 while it is a standby")
GRAPH_EPOCH = Gauge("vitrail_graph_epoch", "The leadership epoch of this graph process (fencing token)")
GRAPH_UNACKED = Gauge(
    "vitrail_graph_unacked_inputs", "Input messages applied and waiting for their events to be stored before the ack"
)
GRAPH_STORED_SEQUENCE = Gauge("vitrail_graph_stored_sequence", "Highest sequence number the event log holds")
SNAPSHOTS_TAKEN = Counter("vitrail_snapshots_taken_total", "Snapshots of the graph stored")
SNAPSHOT_STALL_SECONDS = Histogram(
    "vitrail_snapshot_stall_seconds",
    "Time event processing stopped to take a snapshot (the fork)",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
SNAPSHOT_FAILURES = Counter("vitrail_snapshot_failures_total", "Snapshots that could not be taken or stored")
HISTORY_RECORDS = Counter(
    "vitrail_history_records_total", "Alarm and causal-link history records stored by the graph leader"
)
HISTORY_SEQUENCE = Gauge("vitrail_history_sequence", "The alarm history is complete up to this event")
HISTORY_WRITE_FAILURES = Counter("vitrail_history_write_failures_total", "Alarm history writes that failed (retried)")
HISTORY_PURGED = Counter("vitrail_history_purged_total", "History rows removed by the retention", ["table"])
