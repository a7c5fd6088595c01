"""CSV (RFC 4180, UTF-8 without a BOM, CRLF, a header line): one export of one message type.

Its columns are that type's fields: the SMS fields; for HLR, the SMS fields with `body`
spread into `body.Country_name`, `body.Brand`, …; for Viber, the SMS fields, `img`,
`Caption`, `Action` and the fallback SMS's fields as `alternativeSMS.message_ID`, …
None is an empty cell.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from tidings.exports.rows import HLR_BODY_FIELDS, SMS_FIELDS, VIBER_FIELDS, ExportRow


def csv_columns(message_type: str) -> tuple[str, ...]:
    if message_type == "sms":
        return SMS_FIELDS
    if message_type == "hlr":
        return (*SMS_FIELDS[:-1], *(f"body.{field}" for field in HLR_BODY_FIELDS))
    if message_type == "viber":
        return (
            *SMS_FIELDS,
            *VIBER_FIELDS,
            *(f"alternativeSMS.{field}" for field in SMS_FIELDS),
        )
    raise ValueError(f"no CSV columns for message type {message_type!r}")


def _cell(row: ExportRow, column: str) -> Any:
    value: Any = row
    for part in column.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


class CsvWriter:
    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = tuple(columns)
        self._flat = all("." not in column for column in self.columns)

    def begin(self) -> bytes:
        return self._encode([self.columns])

    def rows(self, rows: Sequence[ExportRow]) -> bytes:
        if self._flat:
            columns = self.columns
            return self._encode([[row.get(column) for column in columns] for row in rows])
        return self._encode([[_cell(row, column) for column in self.columns] for row in rows])

    def end(self) -> bytes:
        return b""

    @staticmethod
    def _encode(lines: Sequence[Sequence[Any]]) -> bytes:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\r\n").writerows(lines)
        return buffer.getvalue().encode("utf-8")
