"""COS XML in and out: one place that renders well-formed documents and parses request bodies safely.

It knows nothing of COS errors (errors.py renders through it); callers turn BadXmlBody into a CosError."""

from __future__ import annotations

import re
from typing import Any
from xml.parsers.expat import ExpatError

import xmltodict

MAX_XML_BODY = 2 * 1024 * 1024
# XML 1.0 cannot carry these even as character references; they are shown escaped instead (keys holding them are
# refused at write time, so only echoed request text can contain them).
_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(value: str) -> str:
    return _XML_ILLEGAL.sub(lambda m: f"\\x{ord(m[0]):02x}", value)


def _leaves(node: object) -> object:
    if isinstance(node, dict):
        return {k: _leaves(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_leaves(v) for v in node]
    if node is None:
        return None
    return xml_text(node if isinstance(node, str) else str(node))


def render(doc: dict[str, Any]) -> bytes:
    """A one-root dict -> UTF-8 XML; ints become text, control characters are escaped as text."""
    return xmltodict.unparse(_leaves(doc), encoding="utf-8").encode("utf-8")


class BadXmlBody(ValueError):
    """A request body that is not the document asked for; `code` is the COS error code to answer with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def parse(body: bytes, root: str) -> dict[str, Any]:
    """A request body that must be `<root>...</root>`; anything else raises BadXmlBody (400 MalformedXML)."""
    if len(body) > MAX_XML_BODY:
        raise BadXmlBody("EntityTooLarge", f"the XML body exceeds {MAX_XML_BODY} bytes")
    try:
        doc = xmltodict.parse(body, disable_entities=True)
    except (ExpatError, ValueError, UnicodeError) as exc:
        raise BadXmlBody("MalformedXML", f"the XML you provided was not well-formed: {exc}") from None
    if not isinstance(doc, dict) or root not in doc:
        raise BadXmlBody("MalformedXML", f"the XML you provided must have <{root}> as its root element")
    node = doc[root]
    return node if isinstance(node, dict) else {}


def as_list(node: object) -> list[Any]:
    """xmltodict gives one child as a value and several as a list."""
    if node is None:
        return []
    return node if isinstance(node, list) else [node]


def text(node: object) -> str:
    """An element's text whether or not it carried attributes."""
    if isinstance(node, dict):
        node = node.get("#text")
    return node if isinstance(node, str) else ""
