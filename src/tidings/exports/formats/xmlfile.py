"""XML: `<response><error>0</error><message_data><message>…</message>…</message_data></response>`.

Each row is a `<message>` whose children are its fields, in order; a field name that is not
an XML name ("Incoming date") has its spaces replaced by `_` (`<Incoming_date>`). A nested
object (an HLR `body`, a Viber `alternativeSMS`) is a nested element; None is an empty
element. Characters XML 1.0 cannot carry (control characters other than tab and newline)
become U+FFFD; a carriage return is written `&#13;` so that it survives parsing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from tidings.exports.rows import ExportRow

HEAD = b'<?xml version="1.0" encoding="UTF-8"?>\n<response><error>0</error><message_data>\n'
TAIL = b"</message_data></response>\n"

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_SPECIAL = re.compile("[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]")


def tag_of(field: str) -> str:
    """An XML element name for a field name."""
    tag = _NAME_CHARS.sub("_", field)
    return tag if tag[:1].isalpha() or tag[:1] == "_" else f"_{tag}"


def escape(text: str) -> str:
    if not _SPECIAL.search(text):
        return text
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = text.replace("\r", "&#13;")
    return _NOT_XML.sub("\ufffd", text)


class XmlWriter:
    def __init__(self) -> None:
        self._tags: dict[str, str] = {}

    def _fields(self, row: dict[str, Any], out: list[str]) -> None:
        tags = self._tags
        for field, value in row.items():
            tag = tags.get(field)
            if tag is None:
                tag = tags[field] = tag_of(field)
            kind = type(value)
            if kind is str:
                out.append(f"<{tag}>{escape(value)}</{tag}>")
            elif value is None:
                out.append(f"<{tag}/>")
            elif kind is int:
                out.append(f"<{tag}>{value}</{tag}>")
            elif isinstance(value, dict):
                out.append(f"<{tag}>")
                self._fields(value, out)
                out.append(f"</{tag}>")
            elif isinstance(value, bool):
                out.append(f"<{tag}>{int(value)}</{tag}>")
            else:
                out.append(f"<{tag}>{escape(str(value))}</{tag}>")

    def begin(self) -> bytes:
        return HEAD

    def rows(self, rows: Sequence[ExportRow]) -> bytes:
        out: list[str] = []
        for row in rows:
            out.append("<message>")
            self._fields(row, out)
            out.append("</message>\n")
        return "".join(out).encode("utf-8")

    def end(self) -> bytes:
        return TAIL
