"""The SMPP PDU codec: wire bytes, round trips, leniency, and smpp34 as an independent codec."""

from __future__ import annotations

import dataclasses
import struct

import pytest
import smpp34
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.connectors.smpp import pdu as pdu_module
from tidings.connectors.smpp.pdu import (
    BindTransceiver,
    BindTransceiverResp,
    BodyError,
    CancelSm,
    CommandId,
    CommandStatus,
    DataSm,
    DataSmResp,
    DecodeError,
    DeliverSm,
    DeliverSmResp,
    EncodeError,
    EnquireLink,
    GenericNack,
    Outbind,
    Pdu,
    QuerySm,
    QuerySmResp,
    ReplaceSm,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnknownPdu,
    decode,
    encode,
    status_name,
)
from tidings.connectors.smpp.tlv import Tag, c_string, get_int, get_str, int_value


def test_enquire_link_wire_form() -> None:
    assert encode(EnquireLink(7)).hex() == "00000010000000150000000000000007"
    assert decode(bytes.fromhex("00000010800000150000000000000007")).name == ("enquire_link_resp")


def test_bind_transceiver_wire_form() -> None:
    wire = encode(BindTransceiver(1, system_id="esme", password="pw", system_type="T"))
    body = b"esme\0pw\0T\0" + bytes([0x34, 0, 0]) + b"\0"
    assert wire == struct.pack(">IIII", 16 + len(body), 0x09, 0, 1) + body


def test_submit_sm_wire_form_by_hand() -> None:
    pdu = SubmitSm(
        2,
        source_addr_ton=5,
        source_addr="Tidings",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="380971234567",
        registered_delivery=1,
        short_message=b"hi",
        tlvs={Tag.USER_MESSAGE_REFERENCE: int_value(42, 2)},
    )
    body = (
        b"\0"  # service_type
        + bytes([5, 0])
        + b"Tidings\0"
        + bytes([1, 1])
        + b"380971234567\0"
        + bytes([0, 0, 0])  # esm_class, protocol_id, priority_flag
        + b"\0\0"  # schedule_delivery_time, validity_period
        + bytes([1, 0, 0, 0])  # registered_delivery, replace, data_coding, sm_default_msg_id
        + bytes([2])
        + b"hi"
        + bytes.fromhex("02040002002a")
    )
    assert encode(pdu) == struct.pack(">IIII", 16 + len(body), 4, 0, 2) + body


SAMPLES: list[Pdu] = [
    BindTransceiver(1, system_id="esme", password="secret", system_type="X", address_range="^1"),
    BindTransceiverResp(1, 0, {Tag.SC_INTERFACE_VERSION: b"\x34"}, system_id="SMSC"),
    Outbind(3, system_id="smsc", password="p"),
    Unbind(4),
    GenericNack(5, CommandStatus.ESME_RINVCMDID),
    SubmitSm(6, destination_addr="1", short_message=bytes(range(254))),
    SubmitSmResp(6, 0, message_id="abc123"),
    DeliverSm(7, esm_class=4, short_message=b"id:1 stat:DELIVRD"),
    DeliverSmResp(7),
    DataSm(8, source_addr="a" * 64, tlvs={Tag.MESSAGE_PAYLOAD: b"x" * 1000}),
    DataSmResp(8, 0, {Tag.ADDITIONAL_STATUS_INFO_TEXT: c_string("ok")}, message_id="9"),
    QuerySm(9, message_id="m1", source_addr="s"),
    QuerySmResp(9, message_id="m1", final_date="260301120000000+", message_state=2),
    CancelSm(10, message_id="m2", destination_addr="380"),
    ReplaceSm(11, message_id="m3", short_message=b"new"),
    UnknownPdu(sequence_number=12, command_id=0x00000021, body=b"\x01\x02"),
]


@pytest.mark.parametrize("pdu", SAMPLES, ids=lambda p: p.name)
def test_round_trip(pdu: Pdu) -> None:
    assert decode(encode(pdu)) == pdu


def test_layouts_follow_the_field_order() -> None:
    """decode builds a PDU from its layout's values positionally."""
    for cls in pdu_module._CLASSES.values():
        fields = [f.name for f in dataclasses.fields(cls)][3:]
        assert fields == [name for name, _, _ in cls.layout], cls.__name__


def test_error_response_without_body_decodes() -> None:
    wire = struct.pack(">IIII", 16, CommandId.SUBMIT_SM_RESP, CommandStatus.ESME_RTHROTTLED, 9)
    pdu = decode(wire)
    assert isinstance(pdu, SubmitSmResp)
    assert (pdu.message_id, pdu.command_status) == ("", CommandStatus.ESME_RTHROTTLED)


def test_lenient_on_overlong_strings_strict_when_encoding() -> None:
    long_id = "x" * 80  # longer than the spec's 64
    wire = struct.pack(">IIII", 16 + 81, CommandId.SUBMIT_SM_RESP, 0, 1) + long_id.encode() + b"\0"
    pdu = decode(wire)
    assert isinstance(pdu, SubmitSmResp) and pdu.message_id == long_id
    with pytest.raises(EncodeError):
        encode(pdu)
    with pytest.raises(EncodeError):
        encode(SubmitSm(destination_addr="1" * 21))
    with pytest.raises(EncodeError):
        encode(SubmitSm(source_addr="Café"))
    with pytest.raises(EncodeError):
        encode(SubmitSm(short_message=b"x" * 255))
    with pytest.raises(EncodeError):
        encode(EnquireLink(tlvs={1: b""}))


def test_bad_bodies_carry_the_status_to_answer() -> None:
    head = struct.pack(">IIII", 16 + 3, CommandId.SUBMIT_SM, 0, 77)
    with pytest.raises(BodyError) as missing_nul:
        decode(head + b"abc")
    assert missing_nul.value.sequence_number == 77
    assert missing_nul.value.status == CommandStatus.ESME_RINVCMDLEN
    good = encode(SubmitSm(5, short_message=b"hello"))
    short = good[:-3]
    short = struct.pack(">I", len(short)) + short[4:]
    with pytest.raises(BodyError) as bad_length:
        decode(short)
    assert bad_length.value.status == CommandStatus.ESME_RINVMSGLEN
    tlv_cut = encode(SubmitSm(5, tlvs={Tag.MESSAGE_PAYLOAD: b"abcd"}))[:-2]
    tlv_cut = struct.pack(">I", len(tlv_cut)) + tlv_cut[4:]
    with pytest.raises(BodyError) as bad_tlv:
        decode(tlv_cut)
    assert bad_tlv.value.status == CommandStatus.ESME_RINVPARLEN
    with pytest.raises(DecodeError):
        decode(b"\0\0\0\x20" + bytes(12))  # says 32 octets, has 16


def test_status_names() -> None:
    assert status_name(0x58) == "ESME_RTHROTTLED (0x00000058)"
    assert status_name(0x401) == "0x00000401"


def test_tlv_helpers() -> None:
    tlvs = {Tag.MESSAGE_STATE: b"\x02", Tag.RECEIPTED_MESSAGE_ID: b"abc\0", 0x1401: b"v"}
    assert get_int(tlvs, Tag.MESSAGE_STATE) == 2
    assert get_str(tlvs, Tag.RECEIPTED_MESSAGE_ID) == "abc"
    assert get_str({Tag.RECEIPTED_MESSAGE_ID: b"abc"}, Tag.RECEIPTED_MESSAGE_ID) == "abc"
    assert get_int(tlvs, Tag.NETWORK_ERROR_CODE) is None
    assert decode(encode(DeliverSm(1, tlvs=tlvs))).tlvs == tlvs  # vendor tag kept


ascii_text = st.text(st.characters(min_codepoint=1, max_codepoint=127), max_size=20)
octet = st.integers(0, 255)


@st.composite
def short_messages(draw: st.DrawFn) -> SubmitSm | DeliverSm:
    cls = SubmitSm if draw(st.booleans()) else DeliverSm
    return cls(
        draw(st.integers(1, 0x7FFFFFFF)),
        service_type=draw(ascii_text.filter(lambda s: len(s) <= 5)),
        source_addr_ton=draw(octet),
        source_addr_npi=draw(octet),
        source_addr=draw(ascii_text),
        dest_addr_ton=draw(octet),
        dest_addr_npi=draw(octet),
        destination_addr=draw(ascii_text),
        esm_class=draw(octet),
        protocol_id=draw(octet),
        priority_flag=draw(octet),
        schedule_delivery_time=draw(st.sampled_from(["", "260301120000000+"])),
        validity_period=draw(st.sampled_from(["", "000001000000000R"])),
        registered_delivery=draw(octet),
        data_coding=draw(octet),
        short_message=draw(st.binary(max_size=254)),
        tlvs=draw(st.dictionaries(st.integers(1, 0xFFFF), st.binary(max_size=300), max_size=4)),
    )


@given(short_messages())
@settings(max_examples=300, deadline=None)
def test_property_round_trip(pdu: SubmitSm | DeliverSm) -> None:
    assert decode(encode(pdu)) == pdu


@given(short_messages())
@settings(max_examples=150, deadline=None)
def test_property_smpp34_reads_what_we_write(pdu: SubmitSm | DeliverSm) -> None:
    """smpp34 (a Rust codec, written independently) decodes our bytes to the same fields."""
    theirs = smpp34.decode(encode(pdu))
    assert isinstance(theirs, smpp34.SubmitSm | smpp34.DeliverSm)
    assert theirs.command_id == pdu.command_id
    for name in (
        "sequence_number",
        "service_type",
        "source_addr_ton",
        "source_addr",
        "dest_addr_ton",
        "destination_addr",
        "esm_class",
        "registered_delivery",
        "data_coding",
        "short_message",
        "validity_period",
    ):
        assert getattr(theirs, name) == getattr(pdu, name), name
    assert {t.tag: t.value for t in theirs.tlvs} == pdu.tlvs


@given(short_messages())
@settings(max_examples=150, deadline=None)
def test_property_we_read_what_smpp34_writes(pdu: SubmitSm | DeliverSm) -> None:
    cls = smpp34.SubmitSm if isinstance(pdu, SubmitSm) else smpp34.DeliverSm
    theirs = cls(
        pdu.source_addr,
        pdu.destination_addr,
        pdu.short_message,
        service_type=pdu.service_type,
        source_addr_ton=pdu.source_addr_ton,
        source_addr_npi=pdu.source_addr_npi,
        dest_addr_ton=pdu.dest_addr_ton,
        dest_addr_npi=pdu.dest_addr_npi,
        esm_class=pdu.esm_class,
        protocol_id=pdu.protocol_id,
        priority_flag=pdu.priority_flag,
        schedule_delivery_time=pdu.schedule_delivery_time,
        validity_period=pdu.validity_period,
        registered_delivery=pdu.registered_delivery,
        data_coding=pdu.data_coding,
        tlvs=[smpp34.Tlv(tag, value) for tag, value in pdu.tlvs.items()],
        sequence_number=pdu.sequence_number,
    )
    assert decode(theirs.encode()) == pdu


@given(st.binary(min_size=16, max_size=200), st.sampled_from(list(CommandId)))
@settings(max_examples=300, deadline=None)
def test_property_garbage_only_raises_decode_error(body: bytes, command: CommandId) -> None:
    wire = struct.pack(">IIII", len(body) + 16, command, 0, 1) + body
    try:
        pdu = decode(wire)
    except DecodeError:
        return
    assert pdu.command_id == command
