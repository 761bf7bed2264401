"""Local stand-in for COS + Cloud Infinite AISuperResolution, spoken to by cos-python-sdk-v5 over real HTTP."""

from __future__ import annotations

from superres.standin.app import create_app
from superres.standin.errors import CosError
from superres.standin.events import EVENT_PUT, ObjectCreated, ObjectCreatedCallback
from superres.standin.server import StandIn
from superres.standin.settings import DEMO_SECRET_ID, DEMO_SECRET_KEY, Credential, StandinSettings
from superres.standin.store import ObjectInfo, ObjectStore

__all__ = [
    "DEMO_SECRET_ID",
    "DEMO_SECRET_KEY",
    "EVENT_PUT",
    "CosError",
    "Credential",
    "ObjectCreated",
    "ObjectCreatedCallback",
    "ObjectInfo",
    "ObjectStore",
    "StandIn",
    "StandinSettings",
    "create_app",
]
