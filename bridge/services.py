"""The application's long-lived parts, created in the lifespan and shared by the routes."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from bridge.auth import Auth
from bridge.limits import Limits
from bridge.providers.registry import ProviderRegistry
from bridge.runner import GenerationRunner
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


def services_of(connection: HTTPConnection) -> Services:
    services: Services = connection.app.state.services
    return services
