"""JSON: `{"error":0,"message_data":[row, row, …]}`, UTF-8, a line per batch of rows.

The seed shows both a bare array after `"error": 0` (not valid JSON) and a `message_data`
key; the file is the valid one of the two.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from tidings.exports.rows import ExportRow

HEAD = b'{"error":0,"message_data":['
TAIL = b"\n]}\n"


class JsonWriter:
    def __init__(self) -> None:
        self._first = True

    def begin(self) -> bytes:
        return HEAD

    def rows(self, rows: Sequence[ExportRow]) -> bytes:
        if not rows:
            return b""
        # One dumps of the batch: a tenth of the cost of one dumps per row.
        chunk = orjson.dumps(rows)[1:-1]
        if self._first:
            self._first = False
            return b"\n" + chunk
        return b",\n" + chunk

    def end(self) -> bytes:
        return TAIL
