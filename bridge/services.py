"""The application's long-lived parts, created in the lifespan and shared by the routes."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import HTTPConnection

from bridge.access.identity import Auth
from bridge.access.limits import Limits
from bridge.generation.runner import GenerationRunner
from bridge.log.hub import LogHub
from bridge.log.writer import LogWriter
from bridge.observe.metrics import Metrics
from bridge.providers.registry import ProviderRegistry
from bridge.settings import Settings
from bridge.store.base import SessionStore
from bridge.tools import ToolBox


@dataclass(slots=True)
class Services:
    settings: Settings
    store: SessionStore
    store_kind: str
    registry: ProviderRegistry
    runner: GenerationRunner
    auth: Auth
    tools: ToolBox
    limits: Limits
    hub: LogHub
    """The process-wide reader: every log followed in this process, tailed once."""
    writer: LogWriter
    """The process-wide writer: every generation's appends, batched."""
    metrics: Metrics = field(default_factory=Metrics)


def services_of(connection: HTTPConnection) -> Services:
    services: Services = connection.app.state.services
    return services
