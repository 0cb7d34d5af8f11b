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
