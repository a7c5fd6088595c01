"""Delivery receipts: reading them from deliver_sm / data_sm, and matching their ids.

A receipt names the message by the id the SMSC gave in submit_sm_resp, in the
``receipted_message_id`` TLV or the ``id:`` of the text form::

    id:0123abc sub:001 dlvrd:001 submit date:2603011200 done date:2603011201 stat:DELIVRD
    err:000 text:Hello

and its state in the ``message_state`` TLV or ``stat:``. TLVs win over the text when both
are there. The text is read leniently: keys in any case, any order, fields missing,
``submit_date``/``submitdate`` spellings, ``text:`` absent or holding anything.

Ids: SMSCs write the same id differently in submit_sm_resp and in the receipt (hex vs
decimal, leading zeros, case). The canonical form of an id is the submit_sm_resp's id,
trimmed, lower-cased, with leading zeros stripped ("0" stays "0"); that is what is stored as
the message's supplier_message_id. A receipt's id is brought into that form, by the
supplier option ``receipt_id_format``:

    as_is        (default) the same number system on both sides
    hex_to_dec   submit_sm_resp in hex, receipts in decimal: the receipt's id is written in hex
    dec_to_hex   submit_sm_resp in decimal, receipts in hex: the receipt's id in decimal
    auto         learnt from the first receipt that matches a recent submit under exactly one
                 reading; until then (and after a restart, until it is learnt again) as_is
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum, StrEnum

from tidings.connectors.smpp.pdu import DataSm, DeliverSm
from tidings.connectors.smpp.text import decode_short_message
from tidings.connectors.smpp.tlv import Tag, get_int, get_str
from tidings.messages.status import Status

__all__ = [
    "ESM_TYPE_MASK",
    "IdFormat",
    "IdNormaliser",
    "MessageState",
    "Receipt",
    "ReceiptText",
    "canonical_id",
    "format_receipt_text",
    "parse_receipt_text",
    "receipt_from_pdu",
    "state_from_stat",
    "status_of",
]

ESM_TYPE_MASK = 0x3C
ESM_DELIVERY_RECEIPT = 0x04
ESM_INTERMEDIATE = 0x20


class MessageState(IntEnum):
    """message_state (SMPP 3.4 5.2.28; 0 and 9 are SMPP 5.0)."""

    SCHEDULED = 0
    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8
    SKIPPED = 9


# The stat: words, the spec's seven-letter ones first, then spellings seen in the wild.
_STAT_WORDS: dict[str, MessageState] = {
    "ENROUTE": MessageState.ENROUTE,
    "DELIVRD": MessageState.DELIVERED,
    "EXPIRED": MessageState.EXPIRED,
    "DELETED": MessageState.DELETED,
    "UNDELIV": MessageState.UNDELIVERABLE,
    "ACCEPTD": MessageState.ACCEPTED,
    "UNKNOWN": MessageState.UNKNOWN,
    "REJECTD": MessageState.REJECTED,
    "SCHEDULED": MessageState.SCHEDULED,
    "SKIPPED": MessageState.SKIPPED,
    "DELIVERED": MessageState.DELIVERED,
    "UNDELIVERABLE": MessageState.UNDELIVERABLE,
    "UNDELIVERED": MessageState.UNDELIVERABLE,
    "ACCEPTED": MessageState.ACCEPTED,
    "REJECTED": MessageState.REJECTED,
    "EN_ROUTE": MessageState.ENROUTE,
    "FAILED": MessageState.UNDELIVERABLE,
    "EXPIRD": MessageState.EXPIRED,
}

STAT_TEXT: dict[MessageState, str] = {
    MessageState.SCHEDULED: "SCHEDULED",
    MessageState.ENROUTE: "ENROUTE",
    MessageState.DELIVERED: "DELIVRD",
    MessageState.EXPIRED: "EXPIRED",
    MessageState.DELETED: "DELETED",
    MessageState.UNDELIVERABLE: "UNDELIV",
    MessageState.ACCEPTED: "ACCEPTD",
    MessageState.UNKNOWN: "UNKNOWN",
    MessageState.REJECTED: "REJECTD",
    MessageState.SKIPPED: "SKIPPED",
}

# Onto our status machine. DELETED (the SMSC or an operator removed it) counts as rejected;
# ACCEPTED (taken on behalf of the subscriber, e.g. by an operator) stays "sent": nothing
# says it reached the handset. SCHEDULED is en route, SKIPPED (5.0) was never transmitted.
_STATUS: dict[MessageState, Status] = {
    MessageState.SCHEDULED: Status.SENT,
    MessageState.ENROUTE: Status.SENT,
    MessageState.DELIVERED: Status.DELIVERED,
    MessageState.EXPIRED: Status.EXPIRED,
    MessageState.DELETED: Status.REJECTED,
    MessageState.UNDELIVERABLE: Status.UNDELIVERED,
    MessageState.ACCEPTED: Status.SENT,
    MessageState.UNKNOWN: Status.UNKNOWN,
    MessageState.REJECTED: Status.REJECTED,
    MessageState.SKIPPED: Status.UNDELIVERED,
}


def state_from_stat(word: str) -> MessageState | None:
    return _STAT_WORDS.get(word.strip().upper())


def status_of(state: MessageState | None) -> Status:
    return Status.UNKNOWN if state is None else _STATUS[state]


@dataclass(frozen=True, slots=True)
class ReceiptText:
    """The fields of a receipt's text form; None where a field is absent."""

    id: str | None = None
    sub: str | None = None
    dlvrd: str | None = None
    submit_date: str | None = None
    done_date: str | None = None
    stat: str | None = None
    err: str | None = None
    text: str | None = None


_KEYS = {
    "id": "id",
    "sub": "sub",
    "dlvrd": "dlvrd",
    "submit date": "submit_date",
    "submitdate": "submit_date",
    "done date": "done_date",
    "donedate": "done_date",
    "stat": "stat",
    "err": "err",
    "text": "text",
}
_KEY_RE = re.compile(
    r"(?:^|(?<=[\s,;]))(id|sub|dlvrd|submit[ _]?date|done[ _]?date|stat|err|text)\s*:",
    re.IGNORECASE,
)


_STANDARD_RE = re.compile(
    r"id:(\S+) sub:(\S+) dlvrd:(\S+) submit date:(\S+) done date:(\S+) stat:(\S+) err:(\S+)"
    r"(?: [Tt]ext:(.*))?",
    re.DOTALL,
)


def parse_receipt_text(text: str) -> ReceiptText | None:
    """The fields of ``text``, or None when it has neither an ``id:`` nor a ``stat:``."""
    standard = _STANDARD_RE.fullmatch(text)
    if standard is not None:  # the common form, read in one go
        return ReceiptText(*(value or None for value in standard.groups()))
    matches = list(_KEY_RE.finditer(text))
    fields: dict[str, str] = {}
    for index, match in enumerate(matches):
        key = _KEYS[" ".join(match.group(1).lower().replace("_", " ").split())]
        if key == "text":
            fields.setdefault(key, text[match.end() :])
            break
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        fields.setdefault(key, text[match.end() : end].strip(" \t\r\n,;"))
    if "id" not in fields and "stat" not in fields:
        return None
    return ReceiptText(**{key: value for key, value in fields.items() if value != ""})


def format_receipt_text(
    message_id: str,
    stat: str,
    *,
    err: str = "000",
    sub: str = "001",
    dlvrd: str | None = None,
    submit_date: str = "0000000000",
    done_date: str = "0000000000",
    text: str = "",
) -> str:
    """The usual text form (for test SMSCs and the SMPP server)."""
    if dlvrd is None:
        dlvrd = sub if stat == "DELIVRD" else "000"
    return (
        f"id:{message_id} sub:{sub} dlvrd:{dlvrd} submit date:{submit_date} "
        f"done date:{done_date} stat:{stat} err:{err} text:{text[:20]}"
    )


@dataclass(frozen=True, slots=True)
class Receipt:
    message_id: str  # as the SMSC wrote it
    state: MessageState | None
    stat: str  # the stat word as sent, or the state's
    error: str | None = None  # err: or network_error_code
    intermediate: bool = False

    @property
    def status(self) -> Status:
        return status_of(self.state)

    @property
    def detail(self) -> str:
        detail = f"SMPP stat:{self.stat}"
        return f"{detail} err:{self.error}" if self.error else detail


def is_receipt(esm_class: int) -> bool:
    return (esm_class & ESM_TYPE_MASK) in (ESM_DELIVERY_RECEIPT, ESM_INTERMEDIATE)


def receipt_from_pdu(pdu: DeliverSm | DataSm) -> Receipt | None:
    """The receipt a deliver_sm/data_sm carries, or None when it is not one (MO, garbage).

    A receipt is flagged by esm_class (SMSC delivery receipt or intermediate notification);
    a PDU without the flag still counts when it has a receipted_message_id TLV or a text of
    the receipt form with an id and a stat (some SMSCs forget the flag).
    """
    tlv_id = get_str(pdu.tlvs, Tag.RECEIPTED_MESSAGE_ID)
    tlv_state = get_int(pdu.tlvs, Tag.MESSAGE_STATE)
    short_message = pdu.short_message if isinstance(pdu, DeliverSm) else b""
    flagged = is_receipt(pdu.esm_class)
    parsed: ReceiptText | None = None
    if short_message or Tag.MESSAGE_PAYLOAD in pdu.tlvs:
        text = decode_short_message(short_message, pdu.data_coding, 0, pdu.tlvs).text
        parsed = parse_receipt_text(text)
    if not flagged and tlv_id is None and (parsed is None or not parsed.id or not parsed.stat):
        return None
    message_id = (tlv_id or "").strip() or (parsed.id if parsed and parsed.id else "")
    if not message_id:
        return None
    state: MessageState | None = None
    stat = "UNKNOWN"
    if tlv_state is not None and tlv_state in MessageState._value2member_map_:
        state = MessageState(tlv_state)
        stat = STAT_TEXT[state]
    elif parsed is not None and parsed.stat:
        stat = parsed.stat.strip().upper()
        state = state_from_stat(stat)
    error = parsed.err if parsed is not None else None
    network = pdu.tlvs.get(Tag.NETWORK_ERROR_CODE)
    if network and len(network) == 3:
        error = f"{error or ''} net:{network[0]}/{int.from_bytes(network[1:], 'big')}".strip()
    return Receipt(
        message_id=message_id,
        state=state,
        stat=stat,
        error=error,
        intermediate=(pdu.esm_class & ESM_TYPE_MASK) == ESM_INTERMEDIATE,
    )


# --- ids ------------------------------------------------------------------------------


class IdFormat(StrEnum):
    AS_IS = "as_is"
    HEX_TO_DEC = "hex_to_dec"
    DEC_TO_HEX = "dec_to_hex"
    AUTO = "auto"


_HEX_RE = re.compile(r"[0-9a-f]+")


def canonical_id(raw: str) -> str:
    """Trimmed, lower-case, no leading zeros (an id of zeros only is "0")."""
    lowered = raw.strip().lower()
    stripped = lowered.lstrip("0")
    return stripped or ("0" if lowered else "")


def _dec_as_hex(raw: str) -> str | None:
    """A decimal id written in hex (canonical), or None when it is not decimal."""
    text = raw.strip()
    if not text.isdigit() or not text.isascii():
        return None
    return format(int(text), "x")


def _hex_as_dec(raw: str) -> str | None:
    text = raw.strip().lower()
    if not text or _HEX_RE.fullmatch(text) is None:
        return None
    return str(int(text, 16))


class IdNormaliser:
    """Turns submit_sm_resp ids and receipt ids into the canonical form."""

    def __init__(self, fmt: IdFormat = IdFormat.AS_IS, *, remember: int = 100_000) -> None:
        self.format = fmt
        self.learnt: IdFormat | None = None if fmt is IdFormat.AUTO else fmt
        self._remember = remember
        self._recent: dict[str, None] = {}

    def submitted(self, raw: str) -> str:
        canonical = canonical_id(raw)
        if self.format is IdFormat.AUTO and self.learnt is None:
            self._recent[canonical] = None
            if len(self._recent) > self._remember:
                del self._recent[next(iter(self._recent))]
        return canonical

    def receipt(self, raw: str) -> str:
        mode = self.learnt
        if mode is None:
            mode = self._learn(raw)
        if mode is IdFormat.HEX_TO_DEC:
            converted = _dec_as_hex(raw)
        elif mode is IdFormat.DEC_TO_HEX:
            converted = _hex_as_dec(raw)
        else:
            converted = None
        return canonical_id(converted if converted is not None else raw)

    def _learn(self, raw: str) -> IdFormat:
        direct = canonical_id(raw)
        readings = {
            IdFormat.AS_IS: direct,
            IdFormat.HEX_TO_DEC: _dec_as_hex(raw),
            IdFormat.DEC_TO_HEX: _hex_as_dec(raw),
        }
        hits = [
            mode
            for mode, reading in readings.items()
            if reading is not None and canonical_id(reading) in self._recent
        ]
        distinct = {canonical_id(readings[mode] or "") for mode in hits}
        if len(distinct) == 1 and len(hits) >= 1:
            # The same id under every matching reading (e.g. "7" is 7 in both) tells nothing.
            if len(hits) == 1:
                self.learnt = hits[0]
                self._recent.clear()
            return hits[0]
        return IdFormat.AS_IS
