"""SMPP 3.4 PDUs: the command set, command_status names, and a codec without I/O.

Each PDU is a dataclass whose mandatory fields follow the spec's order (section 4); a
class-level layout drives one generic encoder and decoder. Optional parameters are a
``dict[int, bytes]`` (see ``tlv.py``). Shared by the client connector and the SMPP server.

Encoding is strict (field lengths as the spec sets them, so a bad address fails here and
not at the SMSC); decoding is lenient where real peers are sloppy: C-Octet Strings may be
longer than the spec allows, a response with an error status may come without its body, and
a trailing NUL may be missing from a string TLV. A body that does not parse raises
:class:`DecodeError` carrying the command_status to answer with (in a generic_nack).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar

__all__ = [
    "HEADER",
    "MAX_PDU_LENGTH",
    "AlertNotification",
    "BindReceiver",
    "BindReceiverResp",
    "BindResp",
    "BindTransceiver",
    "BindTransceiverResp",
    "BindTransmitter",
    "BindTransmitterResp",
    "BodyError",
    "CancelSm",
    "CancelSmResp",
    "CommandId",
    "CommandStatus",
    "DataSm",
    "DataSmResp",
    "DecodeError",
    "DeliverSm",
    "DeliverSmResp",
    "EncodeError",
    "EnquireLink",
    "EnquireLinkResp",
    "GenericNack",
    "Outbind",
    "Pdu",
    "QuerySm",
    "QuerySmResp",
    "ReplaceSm",
    "ReplaceSmResp",
    "SubmitSm",
    "SubmitSmResp",
    "Unbind",
    "UnbindResp",
    "UnknownPdu",
    "decode",
    "encode",
    "is_response",
    "status_name",
]

HEADER = struct.Struct(">IIII")  # command_length, command_id, command_status, sequence_number
_TLV_HEAD = struct.Struct(">HH")
MAX_PDU_LENGTH = 70_000  # a 64 KiB message_payload and then some; anything longer is garbage
RESPONSE_BIT = 0x80000000


class CommandId(IntEnum):
    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_RECEIVER_RESP = 0x80000001
    BIND_TRANSMITTER = 0x00000002
    BIND_TRANSMITTER_RESP = 0x80000002
    QUERY_SM = 0x00000003
    QUERY_SM_RESP = 0x80000003
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    REPLACE_SM = 0x00000007
    REPLACE_SM_RESP = 0x80000007
    CANCEL_SM = 0x00000008
    CANCEL_SM_RESP = 0x80000008
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    OUTBIND = 0x0000000B
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015
    SUBMIT_MULTI = 0x00000021
    SUBMIT_MULTI_RESP = 0x80000021
    ALERT_NOTIFICATION = 0x00000102
    DATA_SM = 0x00000103
    DATA_SM_RESP = 0x80000103


class CommandStatus(IntEnum):
    """SMPP 3.4 command_status values (table 5-2); names as the spec writes them."""

    ESME_ROK = 0x00
    ESME_RINVMSGLEN = 0x01
    ESME_RINVCMDLEN = 0x02
    ESME_RINVCMDID = 0x03
    ESME_RINVBNDSTS = 0x04
    ESME_RALYBND = 0x05
    ESME_RINVPRTFLG = 0x06
    ESME_RINVREGDLVFLG = 0x07
    ESME_RSYSERR = 0x08
    ESME_RINVSRCADR = 0x0A
    ESME_RINVDSTADR = 0x0B
    ESME_RINVMSGID = 0x0C
    ESME_RBINDFAIL = 0x0D
    ESME_RINVPASWD = 0x0E
    ESME_RINVSYSID = 0x0F
    ESME_RCANCELFAIL = 0x11
    ESME_RREPLACEFAIL = 0x13
    ESME_RMSGQFUL = 0x14
    ESME_RINVSERTYP = 0x15
    ESME_RINVNUMDESTS = 0x33
    ESME_RINVDLNAME = 0x34
    ESME_RINVDESTFLAG = 0x40
    ESME_RINVSUBREP = 0x42
    ESME_RINVESMCLASS = 0x43
    ESME_RCNTSUBDL = 0x44
    ESME_RSUBMITFAIL = 0x45
    ESME_RINVSRCTON = 0x48
    ESME_RINVSRCNPI = 0x49
    ESME_RINVDSTTON = 0x50
    ESME_RINVDSTNPI = 0x51
    ESME_RINVSYSTYP = 0x53
    ESME_RINVREPFLAG = 0x54
    ESME_RINVNUMMSGS = 0x55
    ESME_RTHROTTLED = 0x58
    ESME_RINVSCHED = 0x61
    ESME_RINVEXPIRY = 0x62
    ESME_RINVDFTMSGID = 0x63
    ESME_RX_T_APPN = 0x64
    ESME_RX_P_APPN = 0x65
    ESME_RX_R_APPN = 0x66
    ESME_RQUERYFAIL = 0x67
    ESME_RINVOPTPARSTREAM = 0xC0
    ESME_ROPTPARNOTALLWD = 0xC1
    ESME_RINVPARLEN = 0xC2
    ESME_RMISSINGOPTPARAM = 0xC3
    ESME_RINVOPTPARAMVAL = 0xC4
    ESME_RDELIVERYFAILURE = 0xFE
    ESME_RUNKNOWNERR = 0xFF
    # SMPP 5.0 (table 4-45): the SMPP server's refusal of text it does not take.
    ESME_RINVDCS = 0x104


_STATUS_NAMES = {status.value: status.name for status in CommandStatus}


def status_name(code: int) -> str:
    """``ESME_RTHROTTLED (0x00000058)``; vendor codes show as ``0x00000401``."""
    name = _STATUS_NAMES.get(code)
    return f"{name} (0x{code:08X})" if name else f"0x{code:08X}"


def is_response(command_id: int) -> bool:
    return bool(command_id & RESPONSE_BIT)


class EncodeError(ValueError):
    """A field does not fit the spec (too long, not ASCII, out of range)."""


class DecodeError(ValueError):
    """A PDU that does not parse; ``status`` is the command_status to answer with."""

    def __init__(self, message: str, status: int = CommandStatus.ESME_RINVCMDLEN) -> None:
        super().__init__(message)
        self.status = status


# Field kinds of a layout.
_CSTR = 0  # C-Octet String, size = maximum length including the NUL
_U8 = 1
_SM = 2  # sm_length (1 octet) followed by that many octets of short_message

_Layout = tuple[tuple[str, int, int], ...]

_SUBMIT_LAYOUT: _Layout = (
    ("service_type", _CSTR, 6),
    ("source_addr_ton", _U8, 1),
    ("source_addr_npi", _U8, 1),
    ("source_addr", _CSTR, 21),
    ("dest_addr_ton", _U8, 1),
    ("dest_addr_npi", _U8, 1),
    ("destination_addr", _CSTR, 21),
    ("esm_class", _U8, 1),
    ("protocol_id", _U8, 1),
    ("priority_flag", _U8, 1),
    ("schedule_delivery_time", _CSTR, 17),
    ("validity_period", _CSTR, 17),
    ("registered_delivery", _U8, 1),
    ("replace_if_present_flag", _U8, 1),
    ("data_coding", _U8, 1),
    ("sm_default_msg_id", _U8, 1),
    ("short_message", _SM, 254),
)
_BIND_LAYOUT: _Layout = (
    ("system_id", _CSTR, 16),
    ("password", _CSTR, 9),
    ("system_type", _CSTR, 13),
    ("interface_version", _U8, 1),
    ("addr_ton", _U8, 1),
    ("addr_npi", _U8, 1),
    ("address_range", _CSTR, 41),
)


@dataclass(slots=True)
class Pdu:
    """Header fields and optional parameters; subclasses add the mandatory body."""

    command_id: ClassVar[int]
    layout: ClassVar[_Layout] = ()
    takes_tlvs: ClassVar[bool] = False

    sequence_number: int = 0
    command_status: int = 0
    tlvs: dict[int, bytes] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return _command_name(self.command_id)


@dataclass(slots=True)
class UnknownPdu(Pdu):
    """A command this codec has no layout for (submit_multi, vendor commands): raw body."""

    command_id: int = 0  # type: ignore[misc]  # per instance here, not per class
    body: bytes = b""


@dataclass(slots=True)
class _Bind(Pdu):
    layout: ClassVar[_Layout] = _BIND_LAYOUT
    system_id: str = ""
    password: str = ""
    system_type: str = ""
    interface_version: int = 0x34
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""


@dataclass(slots=True)
class BindTransmitter(_Bind):
    command_id: ClassVar[int] = CommandId.BIND_TRANSMITTER


@dataclass(slots=True)
class BindReceiver(_Bind):
    command_id: ClassVar[int] = CommandId.BIND_RECEIVER


@dataclass(slots=True)
class BindTransceiver(_Bind):
    command_id: ClassVar[int] = CommandId.BIND_TRANSCEIVER


@dataclass(slots=True)
class BindResp(Pdu):
    layout: ClassVar[_Layout] = (("system_id", _CSTR, 16),)
    takes_tlvs: ClassVar[bool] = True  # sc_interface_version
    system_id: str = ""


@dataclass(slots=True)
class BindTransmitterResp(BindResp):
    command_id: ClassVar[int] = CommandId.BIND_TRANSMITTER_RESP


@dataclass(slots=True)
class BindReceiverResp(BindResp):
    command_id: ClassVar[int] = CommandId.BIND_RECEIVER_RESP


@dataclass(slots=True)
class BindTransceiverResp(BindResp):
    command_id: ClassVar[int] = CommandId.BIND_TRANSCEIVER_RESP


@dataclass(slots=True)
class Outbind(Pdu):
    command_id: ClassVar[int] = CommandId.OUTBIND
    layout: ClassVar[_Layout] = (("system_id", _CSTR, 16), ("password", _CSTR, 9))
    system_id: str = ""
    password: str = ""


@dataclass(slots=True)
class Unbind(Pdu):
    command_id: ClassVar[int] = CommandId.UNBIND


@dataclass(slots=True)
class UnbindResp(Pdu):
    command_id: ClassVar[int] = CommandId.UNBIND_RESP


@dataclass(slots=True)
class EnquireLink(Pdu):
    command_id: ClassVar[int] = CommandId.ENQUIRE_LINK


@dataclass(slots=True)
class EnquireLinkResp(Pdu):
    command_id: ClassVar[int] = CommandId.ENQUIRE_LINK_RESP


@dataclass(slots=True)
class GenericNack(Pdu):
    command_id: ClassVar[int] = CommandId.GENERIC_NACK


@dataclass(slots=True)
class _ShortMessage(Pdu):
    layout: ClassVar[_Layout] = _SUBMIT_LAYOUT
    takes_tlvs: ClassVar[bool] = True
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""


@dataclass(slots=True)
class SubmitSm(_ShortMessage):
    command_id: ClassVar[int] = CommandId.SUBMIT_SM


@dataclass(slots=True)
class DeliverSm(_ShortMessage):
    command_id: ClassVar[int] = CommandId.DELIVER_SM


@dataclass(slots=True)
class SubmitSmResp(Pdu):
    command_id: ClassVar[int] = CommandId.SUBMIT_SM_RESP
    layout: ClassVar[_Layout] = (("message_id", _CSTR, 65),)
    message_id: str = ""


@dataclass(slots=True)
class DeliverSmResp(Pdu):
    command_id: ClassVar[int] = CommandId.DELIVER_SM_RESP
    layout: ClassVar[_Layout] = (("message_id", _CSTR, 65),)
    message_id: str = ""


@dataclass(slots=True)
class DataSm(Pdu):
    command_id: ClassVar[int] = CommandId.DATA_SM
    layout: ClassVar[_Layout] = (
        ("service_type", _CSTR, 6),
        ("source_addr_ton", _U8, 1),
        ("source_addr_npi", _U8, 1),
        ("source_addr", _CSTR, 65),
        ("dest_addr_ton", _U8, 1),
        ("dest_addr_npi", _U8, 1),
        ("destination_addr", _CSTR, 65),
        ("esm_class", _U8, 1),
        ("registered_delivery", _U8, 1),
        ("data_coding", _U8, 1),
    )
    takes_tlvs: ClassVar[bool] = True
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    registered_delivery: int = 0
    data_coding: int = 0


@dataclass(slots=True)
class DataSmResp(Pdu):
    command_id: ClassVar[int] = CommandId.DATA_SM_RESP
    layout: ClassVar[_Layout] = (("message_id", _CSTR, 65),)
    takes_tlvs: ClassVar[bool] = True
    message_id: str = ""


@dataclass(slots=True)
class QuerySm(Pdu):
    command_id: ClassVar[int] = CommandId.QUERY_SM
    layout: ClassVar[_Layout] = (
        ("message_id", _CSTR, 65),
        ("source_addr_ton", _U8, 1),
        ("source_addr_npi", _U8, 1),
        ("source_addr", _CSTR, 21),
    )
    message_id: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""


@dataclass(slots=True)
class QuerySmResp(Pdu):
    command_id: ClassVar[int] = CommandId.QUERY_SM_RESP
    layout: ClassVar[_Layout] = (
        ("message_id", _CSTR, 65),
        ("final_date", _CSTR, 17),
        ("message_state", _U8, 1),
        ("error_code", _U8, 1),
    )
    message_id: str = ""
    final_date: str = ""
    message_state: int = 0
    error_code: int = 0


@dataclass(slots=True)
class CancelSm(Pdu):
    command_id: ClassVar[int] = CommandId.CANCEL_SM
    layout: ClassVar[_Layout] = (
        ("service_type", _CSTR, 6),
        ("message_id", _CSTR, 65),
        ("source_addr_ton", _U8, 1),
        ("source_addr_npi", _U8, 1),
        ("source_addr", _CSTR, 21),
        ("dest_addr_ton", _U8, 1),
        ("dest_addr_npi", _U8, 1),
        ("destination_addr", _CSTR, 21),
    )
    service_type: str = ""
    message_id: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""


@dataclass(slots=True)
class CancelSmResp(Pdu):
    command_id: ClassVar[int] = CommandId.CANCEL_SM_RESP


@dataclass(slots=True)
class ReplaceSm(Pdu):
    command_id: ClassVar[int] = CommandId.REPLACE_SM
    layout: ClassVar[_Layout] = (
        ("message_id", _CSTR, 65),
        ("source_addr_ton", _U8, 1),
        ("source_addr_npi", _U8, 1),
        ("source_addr", _CSTR, 21),
        ("schedule_delivery_time", _CSTR, 17),
        ("validity_period", _CSTR, 17),
        ("registered_delivery", _U8, 1),
        ("sm_default_msg_id", _U8, 1),
        ("short_message", _SM, 254),
    )
    message_id: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""


@dataclass(slots=True)
class ReplaceSmResp(Pdu):
    command_id: ClassVar[int] = CommandId.REPLACE_SM_RESP


@dataclass(slots=True)
class AlertNotification(Pdu):
    command_id: ClassVar[int] = CommandId.ALERT_NOTIFICATION
    layout: ClassVar[_Layout] = (
        ("source_addr_ton", _U8, 1),
        ("source_addr_npi", _U8, 1),
        ("source_addr", _CSTR, 65),
        ("esme_addr_ton", _U8, 1),
        ("esme_addr_npi", _U8, 1),
        ("esme_addr", _CSTR, 65),
    )
    takes_tlvs: ClassVar[bool] = True
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    esme_addr_ton: int = 0
    esme_addr_npi: int = 0
    esme_addr: str = ""


_CLASSES: dict[int, type[Pdu]] = {
    cls.command_id: cls
    for cls in (
        BindTransmitter,
        BindTransmitterResp,
        BindReceiver,
        BindReceiverResp,
        BindTransceiver,
        BindTransceiverResp,
        Outbind,
        Unbind,
        UnbindResp,
        EnquireLink,
        EnquireLinkResp,
        GenericNack,
        SubmitSm,
        SubmitSmResp,
        DeliverSm,
        DeliverSmResp,
        DataSm,
        DataSmResp,
        QuerySm,
        QuerySmResp,
        CancelSm,
        CancelSmResp,
        ReplaceSm,
        ReplaceSmResp,
        AlertNotification,
    )
}


def _command_name(command_id: int) -> str:
    try:
        return CommandId(command_id).name.lower()
    except ValueError:
        return f"command 0x{command_id:08X}"


def encode(pdu: Pdu) -> bytes:
    """The wire form of ``pdu``; raises EncodeError for a field the spec does not allow."""
    body = bytearray()
    if isinstance(pdu, UnknownPdu):
        body += pdu.body
    else:
        for name, kind, size in pdu.layout:
            value = getattr(pdu, name)
            if kind == _U8:
                if not 0 <= value <= 0xFF:
                    raise EncodeError(f"{name} {value} is not one octet")
                body.append(value)
            elif kind == _CSTR:
                try:
                    raw = value.encode("ascii")
                except UnicodeEncodeError:
                    raise EncodeError(f"{name} {value!r} is not ASCII") from None
                if len(raw) >= size or b"\0" in raw:
                    raise EncodeError(f"{name} {value!r} is longer than {size - 1} characters")
                body += raw
                body.append(0)
            else:
                if len(value) > size:
                    raise EncodeError(f"{name} is {len(value)} octets, at most {size} fit")
                body.append(len(value))
                body += value
    if pdu.tlvs:
        if not (pdu.takes_tlvs or isinstance(pdu, UnknownPdu)):
            raise EncodeError(f"{pdu.name} takes no optional parameters")
        for tag, value in pdu.tlvs.items():
            if len(value) > 0xFFFF:
                raise EncodeError(f"TLV 0x{tag:04X} is longer than 65535 octets")
            body += _TLV_HEAD.pack(tag, len(value))
            body += value
    length = HEADER.size + len(body)
    if length > MAX_PDU_LENGTH:
        raise EncodeError(f"PDU of {length} octets is longer than {MAX_PDU_LENGTH}")
    header = HEADER.pack(length, pdu.command_id, pdu.command_status, pdu.sequence_number)
    return header + bytes(body)


def decode(data: bytes) -> Pdu:
    """Parse one whole PDU (header included).

    Raises DecodeError with the command_status to answer; ``sequence_number`` and
    ``command_id`` of the failed PDU are on the error when the header was readable.
    """
    if len(data) < HEADER.size:
        raise DecodeError(f"a PDU needs {HEADER.size} header octets, got {len(data)}")
    length, command_id, status, sequence = HEADER.unpack_from(data)
    if length != len(data):
        raise DecodeError(f"command_length {length} but {len(data)} octets")
    cls = _CLASSES.get(command_id)
    if cls is None:
        return UnknownPdu(
            sequence_number=sequence,
            command_status=status,
            command_id=command_id,
            body=bytes(data[HEADER.size :]),
        )
    values: list[object] = []  # in layout order, which is the dataclass field order
    add = values.append
    pos = HEADER.size
    end = len(data)
    lenient = is_response(command_id)
    for name, kind, _size in cls.layout:
        if pos >= end and lenient:
            break  # an error response may come without its body: the rest default
        if kind == _CSTR:
            nul = data.find(b"\0", pos, end)
            if nul < 0:
                raise _bad_body(f"{name} has no terminating NUL", sequence, command_id)
            add(data[pos:nul].decode("latin-1"))
            pos = nul + 1
        elif kind == _U8:
            if pos >= end:
                raise _bad_body(f"body ends before {name}", sequence, command_id)
            add(data[pos])
            pos += 1
        else:
            if pos >= end:
                raise _bad_body(f"body ends before {name}", sequence, command_id)
            count = data[pos]
            if pos + 1 + count > end:
                raise _bad_body(
                    f"sm_length {count} runs past the body",
                    sequence,
                    command_id,
                    CommandStatus.ESME_RINVMSGLEN,
                )
            add(bytes(data[pos + 1 : pos + 1 + count]))
            pos += 1 + count
    tlvs: dict[int, bytes] = {}
    while pos < end:
        if not cls.takes_tlvs and not lenient:
            raise _bad_body(f"{len(data) - pos} octets after the body", sequence, command_id)
        if pos + 4 > end:
            raise _bad_body(
                "truncated TLV header", sequence, command_id, CommandStatus.ESME_RINVOPTPARSTREAM
            )
        tag, size = _TLV_HEAD.unpack_from(data, pos)
        pos += 4
        if pos + size > end:
            raise _bad_body(
                f"TLV 0x{tag:04X} runs past the body",
                sequence,
                command_id,
                CommandStatus.ESME_RINVPARLEN,
            )
        tlvs[tag] = bytes(data[pos : pos + size])
        pos += size
    return cls(sequence, status, tlvs, *values)


class BodyError(DecodeError):
    """A body that does not parse under a readable header."""

    def __init__(self, message: str, sequence: int, command_id: int, status: int) -> None:
        super().__init__(message, status)
        self.sequence_number = sequence
        self.command_id = command_id


def _bad_body(
    message: str, sequence: int, command_id: int, status: int = CommandStatus.ESME_RINVCMDLEN
) -> BodyError:
    return BodyError(f"{_command_name(command_id)}: {message}", sequence, command_id, status)
