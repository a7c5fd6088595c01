"""Long messages arriving in parts, both ways in: what the SMPP server (client submits) and
the supplier connector (inbound deliver_sm) share.

The coding rules and the reading of one part (UDH 8/16-bit, SAR TLVs, message_payload,
data_coding) are ``text.read_part``; joining the parts' user data into one text is
``text.join_text``. Here: which parts belong together, what data_coding 0 means by name,
and a join that never loses a message whose parts do not decode as one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from tidings.connectors.smpp.text import (
    Concat,
    InboundPart,
    TextCharset,
    TextRefused,
    join_text,
)
from tidings.messages.encoding import decode_gsm7

__all__ = ["assembly_key", "charset_named", "join_leniently"]


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # all but TAB, LF, CR


def assembly_key(source_addr: str, destination_addr: str, concat: Concat) -> str:
    """What the parts of one message share, besides who sent them (client or supplier)."""
    return f"{source_addr}|{destination_addr}|{concat.reference}|{concat.total}"[:120]


def charset_named(name: str) -> TextCharset:
    """A stored charset name; an unknown one (an older release's) reads as GSM-7."""
    try:
        return TextCharset(name)
    except ValueError:
        return TextCharset.GSM7


def join_leniently(parts: Sequence[InboundPart]) -> str:
    """``join_text``, or, for parts that do not decode as one (a handset's mixed codings,
    a broken part), each part decoded on its own with replacement characters: an inbound
    message is kept whatever its octets, never refused after its parts were acknowledged."""
    try:
        return join_text(parts)
    except TextRefused:
        # Control characters become U+FFFD: NUL in particular, which PostgreSQL text refuses
        # (the message could then never be stored, and its supplier would resend it forever).
        return _CONTROL.sub("\ufffd", "".join(_lenient(p) for p in parts))


def _lenient(part: InboundPart) -> str:
    if part.alphabet == "ucs2":
        return part.units[: len(part.units) // 2 * 2].decode("utf-16-be", "replace")
    if part.alphabet == "gsm":
        try:
            return decode_gsm7(bytes(b & 0x7F for b in part.units))
        except ValueError:
            return part.units.decode("ascii", "replace")
    return part.units.decode("latin-1")
