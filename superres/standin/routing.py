"""The stand-in's routes, registered where each handler is defined and gathered into one table.

A handler method carries `@route(method, target, sub=..., options=...)`; `Router` collects the marked methods of
the handler objects it is given, so the table and the set of sub-resource parameters are derived, never kept by
hand. COS routes on (method, bucket or object, sub-resource parameters, copy header); a request that matches no
row answers 501 NotImplemented and changes nothing: no request can fall through to a plain object write or delete.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from superres.standin.auth import PRESIGN_PARAMS
from superres.standin.errors import not_implemented

if TYPE_CHECKING:
    from starlette.responses import Response

    from superres.standin.request import CosRequest

Target = Literal["bucket", "object"]
Handler = Callable[["CosRequest"], Awaitable["Response"]]
RouteKey = tuple[str, str, frozenset[str], bool]

_MARK = "_standin_routes"


@dataclass(frozen=True)
class Route:
    method: str
    target: Target
    sub: frozenset[str] = frozenset()  # sub-resource parameters that select this route
    copy: bool = False  # x-cos-copy-source present
    options: frozenset[str] = frozenset()  # other parameters the handler reads
    signed: bool = True  # False: the handler checks its own signature (POST Object's form) or needs none
    needs_bucket: bool = True  # False: the bucket need not exist yet (PUT Bucket)
    any_params: bool = False  # matches whatever parameters the request carries (OPTIONS preflight)
    action: str = ""  # the CAM action a temporary key's policy must allow on the bucket/key ("" : none)

    @property
    def key(self) -> RouteKey:
        return (self.method, self.target, self.sub, self.copy)


def route(
    method: str,
    target: Target,
    *,
    sub: Iterable[str] = (),
    options: Iterable[str] = (),
    copy: bool = False,
    signed: bool = True,
    needs_bucket: bool = True,
    any_params: bool = False,
    action: str = "",
) -> Callable[[Handler], Handler]:
    """Register the decorated handler method for one (method, target, sub-resources, copy) row; `action` is
    the CAM action (e.g. "cos:PutObject") a temporary key needs on the request's bucket and key."""
    row = Route(method, target, frozenset(sub), copy, frozenset(options), signed, needs_bucket, any_params, action)

    def mark(fn: Handler) -> Handler:
        fn.__dict__.setdefault(_MARK, []).append(row)
        return fn

    return mark


@dataclass(frozen=True)
class Bound:
    route: Route
    handler: Handler


class Router:
    """The routing table of a set of handler objects (each method marked with `@route`)."""

    def __init__(self, handlers: Iterable[object]) -> None:
        self.table: dict[RouteKey, Bound] = {}
        for obj in handlers:
            for _, method in inspect.getmembers(obj, inspect.ismethod):
                for row in getattr(method.__func__, _MARK, ()):
                    if row.key in self.table:
                        raise ValueError(f"two handlers registered for {row.key}")
                    self.table[row.key] = Bound(row, method)
        # Query parameters that select a sub-resource (or CI): a request carrying one is routed on it, never as a
        # plain object request.
        self.subresources = frozenset().union(*(key[2] for key in self.table))

    def find(self, method: str, key: str, params: dict[str, str], headers: dict[str, str]) -> Bound:
        """The table row for a request, or 501 NotImplemented naming what is not implemented."""
        target = "object" if key else "bucket"
        names = set(params) - PRESIGN_PARAMS
        sub = frozenset(names & self.subresources)
        copy = "x-cos-copy-source" in headers
        bound = self.table.get((method, target, frozenset(), False))
        if bound is not None and bound.route.any_params:
            return bound
        bound = self.table.get((method, target, sub, copy))
        what = f"{method} on {'an object' if key else 'a bucket'}"
        if sub:
            what += " with ?" + "&".join(sorted(sub))
        if copy:
            what += " with x-cos-copy-source"
        if bound is None:
            raise not_implemented(what)
        unknown = names - sub - bound.route.options
        if unknown:
            raise not_implemented(f"{what} with parameter(s) {', '.join(sorted(unknown))}")
        return bound
