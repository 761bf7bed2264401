"""The local TencentCloud API 3.0 endpoint: SCF (2018-04-16), the CAM reads of `superres check --cloud`
(2019-01-16), and CI's bucket-service read (GET /ai_bucket), on one port.

tencentcloud-sdk-python talks to it unchanged once its HttpProfile points here
(`HttpProfile(protocol="http", endpoint="127.0.0.1:PORT")`): each request is signed with TC3-HMAC-SHA256 and
verified here (superres.tc3) against the configured keys, and the answer has the shape of the real API
(shared/spec/tencent-platform-facts.md section 7, web-upload-and-deploy-api.md section 4).

Each action is registered where it is implemented, with `@action(SCF, "CreateFunction")` on a provider's
method (functions.py, invoke_api.py, triggers_api.py, layers.py, cam.py); the router is built from those
registrations, so adding an action is one decorated method. An action nobody registered answers the API's
`InvalidAction` error and changes nothing.

    with serve_scf_api(stack) as api:        # api.endpoint == "127.0.0.1:PORT"
        ...
        api.wait_idle()                      # async (InvocationType=Event) invocations finished
"""

from __future__ import annotations

import inspect
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..serving import BackgroundServer
from ..tc3 import SignedCall, Tc3Error, verify_tc3

if TYPE_CHECKING:
    from ..standin.settings import Credential
    from .invoke_api import ReceivedCall
    from .registry import FunctionRegistry, ScfFunction

log = logging.getLogger("superres.scf.api")


@dataclass(frozen=True)
class Service:
    name: str
    version: str


SCF = Service("scf", "2018-04-16")
CAM = Service("cam", "2019-01-16")

_ACTION_ATTR = "__tc_api_action__"


class ApiError(Exception):
    """An error answer: {"Response": {"Error": {"Code", "Message"}, "RequestId"}}."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def action(service: Service, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a provider method as the handler of `service`'s action `name`. The method takes the request's
    JSON parameters and returns the Response's fields (RequestId is added); it may be async."""

    def register(method: Callable[..., Any]) -> Callable[..., Any]:
        setattr(method, _ACTION_ATTR, (service, name))
        return method

    return register


def routes(providers: Iterable[object]) -> dict[tuple[str, str], tuple[Service, Callable[..., Any]]]:
    """(service name, action) -> (service, bound method), from the providers' registrations."""
    table: dict[tuple[str, str], tuple[Service, Callable[..., Any]]] = {}
    for provider in providers:
        for _, method in inspect.getmembers(provider, inspect.ismethod):
            registered = getattr(method, _ACTION_ATTR, None)
            if registered is not None:
                service, name = registered
                if (service.name, name) in table:
                    raise ValueError(f"{service.name} action {name} is registered twice")
                table[(service.name, name)] = (service, method)
    return table


class ScfApiServer:
    """The local cloud API on a port, served by uvicorn in a background thread."""

    def __init__(self, registry: FunctionRegistry, credentials: Sequence[Credential], providers: Iterable[object], *,
                 get_routes: Mapping[str, Callable[[Request], Any]] | None = None,
                 host: str = "127.0.0.1", port: int = 0, clock: Callable[[], float] = time.time) -> None:
        self.registry = registry
        self.credentials = {c.secret_id: c for c in credentials}
        self.providers = list(providers)
        self.actions = routes(self.providers)
        self._clock = clock
        extra = [Route(path, endpoint, methods=["GET"]) for path, endpoint in (get_routes or {}).items()]
        self.app = Starlette(routes=[Route("/", self._handle, methods=["POST"]), *extra])
        self._server = BackgroundServer(self.app, host=host, port=port, name="SCF API")

    @property
    def functions(self) -> dict[tuple[str, str], ScfFunction]:
        return self.registry.functions

    @property
    def calls(self) -> list[ReceivedCall]:
        """The invocations that reached this server (Invoke, InvokeFunction)."""
        return [call for provider in self.providers for call in getattr(provider, "calls", [])]

    @property
    def endpoint(self) -> str:
        """HOST:PORT, what HttpProfile(endpoint=...) and --scf-endpoint / --endpoint take."""
        return f"{self._server.host}:{self._server.port}"

    def start(self) -> ScfApiServer:
        self._server.start()
        log.info("scf api: serving %s", self.endpoint)
        return self

    def wait_idle(self, timeout: float = 300.0) -> bool:
        """Block until every async invocation (retries included) finished."""
        return self.registry.wait_idle(timeout)

    def stop(self) -> None:
        self._server.stop()
        self.registry.close()

    def __enter__(self) -> ScfApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _handle(self, request: Request) -> JSONResponse:
        request_id = str(uuid.uuid4())
        try:
            body = await request.body()
        except ClientDisconnect:  # the caller left mid-body (a cut-off deploy upload): nothing is changed
            return JSONResponse({"Response": {"Error": {"Code": "InvalidParameter", "Message": "incomplete body"},
                                              "RequestId": request_id}}, status_code=400)
        try:
            try:
                _, service_name = verify_tc3(SignedCall(request.method, request.url.path or "/", request.url.query,
                                                        request.headers, body), self.credentials, self._clock)
            except Tc3Error as exc:
                raise ApiError(exc.code, exc.message) from None
            name = request.headers.get("x-tc-action", "")
            version = request.headers.get("x-tc-version", "")
            route = self.actions.get((service_name, name))
            if route is None:
                served = sorted(a for s, a in self.actions if s == service_name)
                raise ApiError("InvalidAction", f"{service_name} action {name!r} is not served here "
                               f"(served: {', '.join(served) or 'none'})")
            service, method = route
            if version != service.version:
                raise ApiError("InvalidParameterValue",
                               f"X-TC-Version {version!r} is not supported; use {service.version}")
            try:
                params = json.loads(body or b"{}")
            except ValueError:
                raise ApiError("InvalidParameter", "the request body is not JSON") from None
            if not isinstance(params, dict):
                raise ApiError("InvalidParameter", "the request body is not a JSON object")
            if inspect.iscoroutinefunction(method):
                result = await method(params)
            else:
                result = await run_in_threadpool(method, params)
        except ApiError as exc:
            return JSONResponse({"Response": {"Error": {"Code": exc.code, "Message": exc.message},
                                              "RequestId": request_id}})
        return JSONResponse({"Response": {**result, "RequestId": request_id}})


class FunctionHost(Protocol):
    """What serve_scf_api needs from the local stack (superres.stack.LocalStack), without importing it."""

    settings: Any  # .credentials: the keys the API accepts

    def scf_registry(self) -> FunctionRegistry: ...

    def api_get_routes(self) -> Mapping[str, Callable[[Request], Any]]: ...


def serve_scf_api(stack: FunctionHost, host: str = "127.0.0.1", port: int = 0, instances: int = 2) -> ScfApiServer:
    """Start the local cloud API for `stack`: its registry of functions (serverless.yml's function, unless the
    stack started with none, and whatever `superres deploy` creates), layers, triggers, and the CAM and CI reads;
    it accepts the stand-in's keys. Stop it with .stop() or use it as a context manager."""
    from .cam import CamApi
    from .functions import FunctionsApi
    from .invoke_api import InvokeApi
    from .layers import LayersApi
    from .triggers_api import TriggersApi

    registry = stack.scf_registry()
    registry.instances = instances
    for function in registry.functions.values():
        function.instances = instances
    providers = [FunctionsApi(registry), InvokeApi(registry), TriggersApi(registry),
                 LayersApi(registry.layers, registry.code_bytes),
                 CamApi(registry.cam)]
    return ScfApiServer(registry, stack.settings.credentials, providers, get_routes=stack.api_get_routes(),
                        host=host, port=port).start()
