"""The export writers: JSON, XML and CSV parse back to the rows written, in chunks.

SMS rows, and HLR and Viber rows built with the shapes `rows.hlr_row` / `rows.viber_row` give
them (the rows from real lookups and Viber messages: tests/integration/test_hlr_exports.py and
test_exports_viber.py).
"""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.exports.formats import ALL_FORMATS, Writer, formats_for, writer_for
from tidings.exports.formats.csvfile import CsvWriter, csv_columns
from tidings.exports.formats.xmlfile import XmlWriter, escape, tag_of
from tidings.exports.rows import (
    HLR_BODY_FIELDS,
    SMS_FIELDS,
    ExportRow,
    hlr_row,
    viber_row,
)


def sms(message_id: int, body: str = "testing message", **changes: Any) -> ExportRow:
    row: ExportRow = {
        "message_ID": message_id,
        "message_type": "sms",
        "direction": "outbound",
        "msisdn": 380505142320,
        "Country_name": "Ukraine",
        "brand_name": "Vodafone",
        "mcc": "255",
        "mnc": "",
        "originator": "testsms",
        "price": "0.0000000 EUR",
        "Incoming date": "2020-10-22 17:28:45",
        "Sending date": "2020-10-22 17:28:45",
        "DLR Date": None,
        "Status": "Delivered",
        "body": body,
    }
    return {**row, **changes}


HLR_RESULT = {
    "Country_name": "Ukraine",
    "Brand": "Kyivstar",
    "Operator": "Kyivstar GSM JSC",
    "MCC": "255",
    "MNC": "03",
    "Status": "Active",
    "IMSI": "255039900000000",
    "Ported": 1,
    "Roaming": 0,
}
VIBER_EXTRAS = {
    "img": "https://site.com/image.png",
    "Caption": "КУПИ!",
    "Action": "https://site.com/buy.html",
}


def write(writer: Writer, rows: list[ExportRow], chunk: int = 2) -> bytes:
    out = [writer.begin()]
    for start in range(0, len(rows), chunk):
        out.append(writer.rows(rows[start : start + chunk]))
    out.append(writer.end())
    return b"".join(out)


def from_xml(data: bytes) -> list[dict[str, Any]]:
    root = ET.fromstring(data)
    assert root.tag == "response" and root.findtext("error") == "0"

    def read(element: ET.Element) -> Any:
        if len(element):
            return {child.tag: read(child) for child in element}
        return element.text or ""

    return [read(message) for message in root.find("message_data") or []]


def as_text(row: dict[str, Any]) -> dict[str, Any]:
    """What XML keeps of a row: text values, None as "", names as XML names."""
    return {
        tag_of(key): as_text(value)
        if isinstance(value, dict)
        else ("" if value is None else str(value))
        for key, value in row.items()
    }


def test_formats_and_their_writers() -> None:
    assert formats_for(None) == ("json", "xml")
    assert formats_for("sms") == ALL_FORMATS
    with pytest.raises(ValueError):
        writer_for("csv", None)
    with pytest.raises(ValueError):
        writer_for("pdf", "sms")


@pytest.mark.parametrize("count", [0, 1, 2, 5])
def test_json_is_the_message_data_object(count: int) -> None:
    rows = [sms(i) for i in range(count)]
    data = write(writer_for("json", None), rows)
    assert orjson.loads(data) == {"error": 0, "message_data": rows}


@pytest.mark.parametrize("count", [0, 1, 5])
def test_xml_is_well_formed_and_reads_back(count: int) -> None:
    rows = [sms(i) for i in range(count)]
    data = write(writer_for("xml", None), rows)
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    assert from_xml(data) == [as_text(row) for row in rows]


def test_csv_has_a_header_and_reads_back() -> None:
    rows = [sms(1), sms(2, body="with, comma"), sms(3, body='"quoted"\r\nlines')]
    data = write(writer_for("csv", "sms"), rows)
    lines = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    assert lines[0] == list(SMS_FIELDS)
    assert lines[1:] == [[("" if v is None else str(v)) for v in row.values()] for row in rows]
    assert write(writer_for("csv", "sms"), []) == (",".join(SMS_FIELDS) + "\r\n").encode()


HARD_TEXTS = [
    "<b>bold</b> & 'quotes' \"double\"",
    "]]> and <![CDATA[",
    "cr\ronly and crlf\r\nand lf\n",
    "Привіт 中文 🎉 \u200b zero-width",
    "tab\tand trailing space ",
    "",
]


@pytest.mark.parametrize("text", HARD_TEXTS)
def test_hard_text_survives_every_format(text: str) -> None:
    rows = [sms(1, body=text, originator=text)]
    assert orjson.loads(write(writer_for("json", None), rows))["message_data"] == rows
    assert from_xml(write(writer_for("xml", None), rows)) == [as_text(rows[0])]
    data = write(writer_for("csv", "sms"), rows).decode("utf-8")
    line = list(csv.reader(io.StringIO(data, newline="")))[1]
    assert line[SMS_FIELDS.index("body")] == text


def test_xml_replaces_characters_it_cannot_carry() -> None:
    assert escape("a\x01b\x1fc\ufffe") == "a\ufffdb\ufffdc\ufffd"
    assert escape("plain") == "plain"
    data = write(XmlWriter(), [sms(1, body="bell\x07")])
    assert from_xml(data)[0]["body"] == "bell\ufffd"


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_any_text_round_trips_through_xml_except_what_xml_forbids(text: str) -> None:
    data = write(XmlWriter(), [sms(1, body=text)])
    expected = "".join(
        "\ufffd"
        if (ord(c) < 0x20 and c not in "\t\n\r")
        or 0xD800 <= ord(c) <= 0xDFFF
        or c in "\ufffe\uffff"
        else c
        for c in text
    )
    assert from_xml(data)[0]["body"] == expected


def test_field_names_become_xml_names() -> None:
    assert tag_of("Incoming date") == "Incoming_date"
    assert tag_of("DLR Date") == "DLR_Date"
    assert tag_of("message_ID") == "message_ID"
    assert tag_of("1st") == "_1st"


# --- HLR and Viber rows (their shapes) ---------------------------------------------------------


def test_an_hlr_row_has_the_result_as_its_body() -> None:
    row = hlr_row(sms(10, originator="HLR"), HLR_RESULT)
    assert row["message_type"] == "hlr"
    assert list(row["body"]) == list(HLR_BODY_FIELDS)
    assert orjson.loads(write(writer_for("json", None), [row]))["message_data"] == [row]
    assert from_xml(write(writer_for("xml", None), [row])) == [as_text(row)]
    data = write(writer_for("csv", "hlr"), [row]).decode()
    header, line = list(csv.reader(io.StringIO(data, newline="")))
    assert header == list(csv_columns("hlr"))
    assert "body" not in header and "body.IMSI" in header
    assert dict(zip(header, line, strict=True))["body.MNC"] == "03"


def test_a_viber_row_carries_its_fallback_sms() -> None:
    fallback = sms(12, body="testing message for Viber undeliv")
    row = viber_row(sms(11, Status="not-viber-user"), VIBER_EXTRAS, fallback)
    assert row["message_type"] == "viber"
    assert list(row)[-4:] == ["img", "Caption", "Action", "alternativeSMS"]
    assert orjson.loads(write(writer_for("json", None), [row]))["message_data"] == [row]
    assert from_xml(write(writer_for("xml", None), [row])) == [as_text(row)]
    data = write(writer_for("csv", "viber"), [row, viber_row(sms(13), VIBER_EXTRAS, None)])
    header, first, second = list(csv.reader(io.StringIO(data.decode(), newline="")))
    cells = dict(zip(header, first, strict=True))
    assert cells["Caption"] == "КУПИ!"
    assert cells["alternativeSMS.message_ID"] == "12"
    assert cells["alternativeSMS.body"] == "testing message for Viber undeliv"
    assert dict(zip(header, second, strict=True))["alternativeSMS.message_ID"] == ""


def test_mixed_rows_in_json_and_xml() -> None:
    rows = [
        sms(1),
        hlr_row(sms(2), HLR_RESULT),
        viber_row(sms(3), VIBER_EXTRAS, sms(4)),
    ]
    assert orjson.loads(write(writer_for("json", None), rows, chunk=1))["message_data"] == rows
    assert from_xml(write(writer_for("xml", None), rows, chunk=3)) == [as_text(r) for r in rows]


def test_csv_columns_per_type() -> None:
    assert csv_columns("sms") == SMS_FIELDS
    assert len(csv_columns("viber")) == len(SMS_FIELDS) * 2 + 3
    with pytest.raises(ValueError):
        csv_columns("mms")
    assert CsvWriter(["a", "b.c"]).rows([{"a": 1, "b": {"c": None}}]) == b"1,\r\n"
