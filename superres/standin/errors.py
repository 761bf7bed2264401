"""COS-style errors: a stable code, an HTTP status and a human message, rendered as COS error XML."""

from __future__ import annotations

from starlette.responses import Response

from superres.standin.xmldoc import render


class CosError(Exception):
    """An error the stand-in answers with, exactly like COS: `<Error><Code/>...</Error>`."""

    def __init__(
        self, status: int, code: str, message: str, resource: str = "", headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.resource = resource
        self.headers = dict(headers or {})  # extra response headers, e.g. Content-Range on a 416

    def to_xml(self, request_id: str, trace_id: str | None = None) -> bytes:
        body = {
            "Error": {
                "Code": self.code,
                "Message": self.message,
                "Resource": self.resource,
                "RequestId": request_id,
                "TraceId": trace_id or request_id,
            }
        }
        return render(body)

    def to_response(self, request_id: str) -> Response:
        return Response(
            self.to_xml(request_id),
            status_code=self.status,
            media_type="application/xml",
            headers=self.headers,
        )


def no_such_key(resource: str) -> CosError:
    return CosError(404, "NoSuchKey", "The specified key does not exist.", resource)


def no_such_bucket(resource: str, detail: str = "The specified bucket does not exist.") -> CosError:
    return CosError(404, "NoSuchBucket", detail, resource)


def invalid_argument(message: str, resource: str = "") -> CosError:
    return CosError(400, "InvalidArgument", message, resource)


def not_implemented(what: str, resource: str = "") -> CosError:
    message = f"{what} is not implemented by this stand-in; nothing was changed."
    return CosError(501, "NotImplemented", message, resource)
