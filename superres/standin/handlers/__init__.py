"""The stand-in's request handlers, one module per thing they serve; each method registers its own route."""

from __future__ import annotations

from superres.standin.handlers.append import Append
from superres.standin.handlers.buckets import Buckets
from superres.standin.handlers.ci import CloudInfiniteRoutes
from superres.standin.handlers.common import Services
from superres.standin.handlers.cors import Cors
from superres.standin.handlers.multipart import Multipart
from superres.standin.handlers.objects import Objects
from superres.standin.handlers.subresources import SubResources


def handler_groups(services: Services, cors: Cors) -> list[object]:
    """Every handler group; `routing.Router` builds the table from their registrations."""
    return [Buckets(services), Objects(services), Multipart(services), SubResources(services),
            CloudInfiniteRoutes(services), Append(services), cors]


__all__ = ["Cors", "Services", "handler_groups"]
