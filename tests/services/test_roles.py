"""Which roles a process runs, and the clear refusals when they cannot run."""

from __future__ import annotations

import pytest

from vitrail.config import Settings
from vitrail.services.runtime import resolve_roles

AMQP = "amqp://guest:guest@127.0.0.1:5672/"


def settings(**values: object) -> Settings:
    return Settings(**values)  # type: ignore[arg-type]


def test_all_is_every_core_role_and_the_listener_only_with_nova() -> None:
    assert resolve_roles(settings()) == {"api", "collector", "graph", "persistor"}
    with_nova = settings(datasources=["static", "nova"], listener={"url": AMQP})
    assert resolve_roles(with_nova) == {"api", "collector", "graph", "persistor", "listener"}
    assert resolve_roles(settings(transport_url=AMQP), ["persistor"]) == {"persistor"}
    assert resolve_roles(settings(roles="graph, collector", transport_url=AMQP)) == {"graph", "collector"}
    assert resolve_roles(settings(transport_url=AMQP), ["api"]) == {"api"}  # --role beats the config


def test_roles_that_cannot_run_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match=r"unknown role\(s\) \['scheduler'\]"):
        resolve_roles(settings(transport_url=AMQP), ["scheduler"])
    with pytest.raises(ValueError, match="need a shared bus"):
        resolve_roles(settings(), ["graph"])
    with pytest.raises(ValueError, match="add nova to datasources"):
        resolve_roles(settings(transport_url=AMQP, listener={"url": AMQP}), ["listener"])
    with pytest.raises(ValueError, match=r"listener\.url"):
        resolve_roles(settings(datasources=["nova"]))  # all includes the listener, which has nowhere to listen
