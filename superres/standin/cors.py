"""Bucket CORS as COS applies it (spec: web-upload-and-deploy-api.md, section 1). Pure logic, no HTTP objects.

- A configuration holds up to 100 rules; each has AllowedOrigin(s) (one `*` at most, anywhere, matching any run of
  characters), AllowedMethod(s) from PUT GET POST DELETE HEAD, AllowedHeader(s) (case-insensitive, `*` allowed),
  ExposeHeader(s) (`*` not supported), MaxAgeSeconds. Rules are tried top to bottom; the first match applies.
- A preflight (OPTIONS, unsigned) matches when a rule allows the Origin, the Access-Control-Request-Method and every
  Access-Control-Request-Headers entry; otherwise 403 AccessForbidden (the OPTIONS Object doc's code).
- Actual requests are never refused for CORS (COS "does not verify whether subsequent cross-origin requests follow
  the rules"): a matching rule only adds Access-Control-* headers, on errors too, so a page can read COS's error.
- Headers, as in the OPTIONS doc's examples: Allow-Origin is `*` for a `*` rule, else the request's Origin (with
  Allow-Credentials: true); Allow-Methods is the rule's whole list; Allow-Headers echoes the request's list for a
  `*` rule, else the rule's list lower-cased; Expose-Headers and Max-Age from the rule.
- `Vary: Origin` is sent only when the configuration's ResponseVary is true (the console's "返回 Vary: Origin"
  option, off unless chosen; cos-js-sdk-v5 writes and reads `ResponseVary`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from superres.standin import xmldoc
from superres.standin.errors import CosError

MAX_RULES = 100
MAX_CONFIG_BYTES = 64 * 1024
METHODS = ("PUT", "GET", "POST", "DELETE", "HEAD")
_FORBIDDEN_MESSAGE = (
    "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method "
    "/ Access-Control-Request-Method or Access-Control-Requet-Headers are not whitelisted by the resource's CORS spec"
)


@dataclass(frozen=True)
class CorsRule:
    origins: tuple[str, ...]
    methods: tuple[str, ...]
    headers: tuple[str, ...] = ()  # lower-cased
    expose: tuple[str, ...] = ()
    max_age: int | None = None
    id: str = ""

    def allows_origin(self, origin: str) -> bool:
        return any(_wildcard_match(pattern, origin) for pattern in self.origins)

    def allows_headers(self, requested: list[str]) -> bool:
        return all(any(_wildcard_match(pattern, name) for pattern in self.headers) for name in requested)

    def is_open(self) -> bool:
        return "*" in self.origins


@dataclass(frozen=True)
class CorsConfig:
    rules: tuple[CorsRule, ...]
    response_vary: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> CorsConfig:
        rules = tuple(CorsRule(**{k: tuple(v) if isinstance(v, list) else v for k, v in r.items()})
                      for r in doc["rules"])
        return cls(rules, bool(doc.get("response_vary")))

    def rule_for(self, origin: str, method: str, headers: list[str] | None = None) -> CorsRule | None:
        """The first rule allowing the origin, the method and (for a preflight) every requested header."""
        return next(
            (r for r in self.rules
             if r.allows_origin(origin) and method in r.methods and r.allows_headers(headers or [])),
            None,
        )


def forbidden() -> CosError:
    return CosError(403, "AccessForbidden", _FORBIDDEN_MESSAGE)


def _wildcard_match(pattern: str, value: str) -> bool:
    pattern, value = pattern.lower(), value.lower()
    if "*" not in pattern:
        return pattern == value
    before, _, after = pattern.partition("*")
    return len(value) >= len(before) + len(after) and value.startswith(before) and value.endswith(after)


def _malformed(message: str) -> CosError:
    return CosError(400, "MalformedXML", message)


def parse_config(doc: dict[str, Any]) -> CorsConfig:
    """A `<CORSConfiguration>` body (as xmldoc.parse returns it) -> CorsConfig, or 400 MalformedXML/InvalidArgument."""
    entries = xmldoc.as_list(doc.get("CORSRule"))
    if not entries:
        raise _malformed("CORSConfiguration needs at least one CORSRule")
    if len(entries) > MAX_RULES:
        raise _malformed(f"CORSConfiguration holds at most {MAX_RULES} CORSRule elements")
    rules = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise _malformed("each CORSRule needs AllowedOrigin and AllowedMethod")
        origins = _texts(entry, "AllowedOrigin")
        methods = _texts(entry, "AllowedMethod")
        if not origins or not methods:
            raise _malformed("each CORSRule needs AllowedOrigin and AllowedMethod")
        for origin in origins:
            if origin.count("*") > 1:
                raise CosError(400, "InvalidArgument", f"AllowedOrigin {origin!r} holds more than one '*'")
        for method in methods:
            if method not in METHODS:
                raise CosError(400, "InvalidArgument", f"AllowedMethod {method!r} is not one of {', '.join(METHODS)}")
        expose = _texts(entry, "ExposeHeader")
        if "*" in expose:
            raise CosError(400, "InvalidArgument", "ExposeHeader does not support '*'; list the headers to expose")
        max_age_text = xmldoc.text(entry.get("MaxAgeSeconds")).strip()
        if max_age_text and not max_age_text.isdigit():
            raise CosError(400, "InvalidArgument", f"MaxAgeSeconds must be a whole number, got {max_age_text!r}")
        rules.append(
            CorsRule(
                origins=tuple(origins),
                methods=tuple(methods),
                headers=tuple(h.lower() for h in _texts(entry, "AllowedHeader")),
                expose=tuple(expose),
                max_age=int(max_age_text) if max_age_text else None,
                id=xmldoc.text(entry.get("ID")),
            )
        )
    vary = xmldoc.text(doc.get("ResponseVary")).strip().lower()
    if vary not in ("", "true", "false"):
        raise CosError(400, "InvalidArgument", f"ResponseVary must be true or false, got {vary!r}")
    return CorsConfig(tuple(rules), vary == "true")


def _texts(entry: dict[str, Any], name: str) -> list[str]:
    return [t.strip() for t in (xmldoc.text(v) for v in xmldoc.as_list(entry.get(name))) if t.strip()]


def config_document(config: CorsConfig) -> dict[str, Any]:
    """The GET Bucket cors body."""
    rules = []
    for rule in config.rules:
        item: dict[str, Any] = {}
        if rule.id:
            item["ID"] = rule.id
        item["AllowedOrigin"] = list(rule.origins)
        item["AllowedMethod"] = list(rule.methods)
        if rule.headers:
            item["AllowedHeader"] = list(rule.headers)
        if rule.expose:
            item["ExposeHeader"] = list(rule.expose)
        if rule.max_age is not None:
            item["MaxAgeSeconds"] = str(rule.max_age)
        rules.append(item)
    doc: dict[str, Any] = {"CORSRule": rules}
    if config.response_vary:
        doc["ResponseVary"] = "true"
    return {"CORSConfiguration": doc}


def preflight_headers(config: CorsConfig | None, origin: str, method: str, request_headers: str) -> dict[str, str]:
    """The headers of a 200 preflight answer, or 403 AccessForbidden when no rule allows the request."""
    requested = [h.strip().lower() for h in request_headers.split(",") if h.strip()]
    rule = config.rule_for(origin, method, requested) if config is not None and origin and method else None
    if rule is None:
        raise forbidden()
    headers = _granted(rule, origin)
    if requested:
        headers["Access-Control-Allow-Headers"] = ",".join(requested if "*" in rule.headers else rule.headers)
    if config is not None and config.response_vary:
        headers["Vary"] = "Origin,Access-Control-Request-Headers,Access-Control-Request-Method"
    return headers


def actual_headers(config: CorsConfig | None, origin: str, method: str) -> dict[str, str]:
    """Access-Control-* (and Vary) for a non-preflight response; empty when nothing matches."""
    if config is None:
        return {}
    headers = {"Vary": "Origin"} if config.response_vary else {}
    rule = config.rule_for(origin, method) if origin else None
    if rule is not None:
        headers.update(_granted(rule, origin))
    return headers


def _granted(rule: CorsRule, origin: str) -> dict[str, str]:
    headers = {"Access-Control-Allow-Origin": "*" if rule.is_open() else origin}
    if not rule.is_open():
        headers["Access-Control-Allow-Credentials"] = "true"
    headers["Access-Control-Allow-Methods"] = ",".join(rule.methods)
    if rule.expose:
        headers["Access-Control-Expose-Headers"] = ",".join(rule.expose)
    if rule.max_age is not None:
        headers["Access-Control-Max-Age"] = str(rule.max_age)
    return headers
