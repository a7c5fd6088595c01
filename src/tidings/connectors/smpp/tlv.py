"""SMPP 3.4 optional parameters (TLVs): tags, and typed reading and writing of values.

A PDU carries its TLVs as ``dict[int, bytes]`` (tag → raw value, wire order kept): the
spec allows each tag at most once, and unknown or vendor tags (0x1400-0x3FFF) pass
through untouched. The helpers below turn values into ints and strings and back.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "Tag",
    "c_string",
    "get_int",
    "get_str",
    "int_value",
    "str_value",
]


class Tag(IntEnum):
    """The SMPP 3.4 optional parameter tags (section 5.3.2)."""

    DEST_ADDR_SUBUNIT = 0x0005
    DEST_NETWORK_TYPE = 0x0006
    DEST_BEARER_TYPE = 0x0007
    DEST_TELEMATICS_ID = 0x0008
    SOURCE_ADDR_SUBUNIT = 0x000D
    SOURCE_NETWORK_TYPE = 0x000E
    SOURCE_BEARER_TYPE = 0x000F
    SOURCE_TELEMATICS_ID = 0x0010
    QOS_TIME_TO_LIVE = 0x0017
    PAYLOAD_TYPE = 0x0019
    ADDITIONAL_STATUS_INFO_TEXT = 0x001D
    RECEIPTED_MESSAGE_ID = 0x001E
    MS_MSG_WAIT_FACILITIES = 0x0030
    PRIVACY_INDICATOR = 0x0201
    SOURCE_SUBADDRESS = 0x0202
    DEST_SUBADDRESS = 0x0203
    USER_MESSAGE_REFERENCE = 0x0204
    USER_RESPONSE_CODE = 0x0205
    SOURCE_PORT = 0x020A
    DESTINATION_PORT = 0x020B
    SAR_MSG_REF_NUM = 0x020C
    LANGUAGE_INDICATOR = 0x020D
    SAR_TOTAL_SEGMENTS = 0x020E
    SAR_SEGMENT_SEQNUM = 0x020F
    SC_INTERFACE_VERSION = 0x0210
    CALLBACK_NUM_PRES_IND = 0x0302
    CALLBACK_NUM_ATAG = 0x0303
    NUMBER_OF_MESSAGES = 0x0304
    CALLBACK_NUM = 0x0381
    DPF_RESULT = 0x0420
    SET_DPF = 0x0421
    MS_AVAILABILITY_STATUS = 0x0422
    NETWORK_ERROR_CODE = 0x0423
    MESSAGE_PAYLOAD = 0x0424
    DELIVERY_FAILURE_REASON = 0x0425
    MORE_MESSAGES_TO_SEND = 0x0426
    MESSAGE_STATE = 0x0427
    USSD_SERVICE_OP = 0x0501
    DISPLAY_TIME = 0x1201
    SMS_SIGNAL = 0x1203
    MS_VALIDITY = 0x1204
    ALERT_ON_MESSAGE_DELIVERY = 0x130C
    ITS_REPLY_TYPE = 0x1380
    ITS_SESSION_INFO = 0x1383


def int_value(value: int, size: int) -> bytes:
    """An unsigned big-endian integer TLV value of ``size`` octets."""
    return value.to_bytes(size, "big")


def c_string(text: str) -> bytes:
    """A C-Octet String TLV value (receipted_message_id, …): ASCII with its NUL."""
    return text.encode("latin-1") + b"\0"


def str_value(value: bytes) -> str:
    """A string TLV value; the trailing NUL of a C-Octet String is optional (SMSCs differ)."""
    end = value.find(b"\0")
    return (value if end < 0 else value[:end]).decode("latin-1")


def get_int(tlvs: dict[int, bytes], tag: int) -> int | None:
    """An integer TLV (any width), or None when absent or empty."""
    value = tlvs.get(tag)
    if not value:
        return None
    return int.from_bytes(value, "big")


def get_str(tlvs: dict[int, bytes], tag: int) -> str | None:
    value = tlvs.get(tag)
    return None if value is None else str_value(value)
