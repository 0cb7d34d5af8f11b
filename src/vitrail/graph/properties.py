"""Names shared by everything that reads or writes the entity graph.

The property names and values are Vitrage's own, so that a Vitrage user (and
``python-vitrageclient``) sees the vertices and edges it expects.
"""

from __future__ import annotations

from enum import StrEnum


class VertexProperty:
    """Property names of a vertex (Vitrage ``VProps``)."""

    VITRAGE_ID = "vitrage_id"
    VITRAGE_CATEGORY = "vitrage_category"
    VITRAGE_TYPE = "vitrage_type"
    ID = "id"
    NAME = "name"
    STATE = "state"
    VITRAGE_STATE = "vitrage_state"
    VITRAGE_AGGREGATED_STATE = "vitrage_aggregated_state"
    VITRAGE_OPERATIONAL_STATE = "vitrage_operational_state"
    VITRAGE_SAMPLE_TIMESTAMP = "vitrage_sample_timestamp"
    UPDATE_TIMESTAMP = "update_timestamp"
    VITRAGE_IS_DELETED = "vitrage_is_deleted"
    VITRAGE_IS_PLACEHOLDER = "vitrage_is_placeholder"
    PROJECT_ID = "project_id"
    VITRAGE_DATASOURCE_NAME = "vitrage_datasource_name"
    SEVERITY = "severity"
    VITRAGE_SEVERITY = "vitrage_severity"
    VITRAGE_AGGREGATED_SEVERITY = "vitrage_aggregated_severity"
    VITRAGE_OPERATIONAL_SEVERITY = "vitrage_operational_severity"


class EdgeProperty:
    """Property names of an edge (Vitrage ``EProps``)."""

    RELATIONSHIP_TYPE = "relationship_type"
    VITRAGE_IS_DELETED = "vitrage_is_deleted"
    UPDATE_TIMESTAMP = "update_timestamp"


class Category(StrEnum):
    """``vitrage_category`` of a vertex."""

    RESOURCE = "RESOURCE"
    ALARM = "ALARM"


class EdgeLabel(StrEnum):
    """Relationship types Vitrage uses; any other string is allowed too."""

    CONTAINS = "contains"
    ON = "on"
    ATTACHED = "attached"
    CAUSES = "causes"
    USES = "uses"
    COMPRISED = "comprised"


class Direction(StrEnum):
    """Which incident edges of a vertex a traversal follows."""

    OUT = "out"
    IN = "in"
    BOTH = "both"


class OperationalState(StrEnum):
    """The normalised states every resource state maps to (Vitrage's values)."""

    OK = "OK"
    TRANSIENT = "TRANSIENT"
    SUBOPTIMAL = "SUBOPTIMAL"
    ERROR = "ERROR"
    DELETED = "DELETED"
    NA = "N/A"


class OperationalSeverity(StrEnum):
    """The normalised severities every alarm severity maps to."""

    OK = "OK"
    WARNING = "WARNING"
    SEVERE = "SEVERE"
    CRITICAL = "CRITICAL"
    NA = "N/A"


#: The vertex of the whole cloud; zones hang below it.
CLUSTER_TYPE = "openstack.cluster"
CLUSTER_ID = "OpenStack Cluster"
