"""The export file formats. A writer turns rows into bytes: a head, one chunk per batch of
rows, a tail; the builder streams those chunks into the file, so no writer holds more than
one batch. Writers are pure (no I/O), so the same ones render the test keys' made-up rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from tidings.exports.formats.csvfile import CsvWriter, csv_columns
from tidings.exports.formats.jsonfile import JsonWriter
from tidings.exports.formats.xmlfile import XmlWriter
from tidings.exports.rows import ExportRow

ALL_FORMATS = ("json", "xml", "csv")
MEDIA_TYPES = {
    "json": "application/json",
    "xml": "application/xml; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
}


class Writer(Protocol):
    def begin(self) -> bytes: ...

    def rows(self, rows: Sequence[ExportRow]) -> bytes: ...

    def end(self) -> bytes: ...


def formats_for(message_type: str | None) -> tuple[str, ...]:
    """What an export is built in: CSV needs one message type (its columns depend on it)."""
    return ALL_FORMATS if message_type else ("json", "xml")


def writer_for(fmt: str, message_type: str | None) -> Writer:
    if fmt == "json":
        return JsonWriter()
    if fmt == "xml":
        return XmlWriter()
    if fmt == "csv" and message_type:
        return CsvWriter(csv_columns(message_type))
    raise ValueError(f"no {fmt} writer for message type {message_type!r}")


__all__ = ["ALL_FORMATS", "MEDIA_TYPES", "Writer", "formats_for", "writer_for"]
