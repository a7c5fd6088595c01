"""From submit_sm to the acceptance pipeline: its time fields, and refusals as command_status."""

from __future__ import annotations

from datetime import datetime, timedelta

from tidings.connectors.smpp.pdu import CommandStatus, DataSm, SubmitSm
from tidings.connectors.smpp.smpptime import SmppTimeError, parse_smpp_time
from tidings.errors import (
    InsufficientFunds,
    InvalidRequest,
    OptedOut,
    PricingError,
    RoutingError,
    TidingsError,
)

MAX_VALIDITY = timedelta(days=7)  # a longer validity_period is cut to this

# The destination opted out of this client's messages (docs/smpp-server.md, docs/optouts.md).
# SMPP 3.4 and 5.0 have no status for it; 0x400-0x4FF is the range both reserve for an SMSC's
# own errors. A status of its own lets the client tell "this number asked you to stop" from
# "this number is wrong" (ESME_RINVDSTADR), and being no throttling or queue status, no
# client retries it.
ESME_ROPTEDOUT = 0x00000400


class BadTime(TidingsError):
    """A schedule_delivery_time or validity_period that cannot be read or makes no sense."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def submit_times(pdu: SubmitSm | DataSm, now: datetime) -> tuple[datetime | None, datetime | None]:
    """(send_at, expires_at) from schedule_delivery_time and validity_period; None: not given.

    A schedule in the past means now. A validity that ends before the message may go is
    refused (ESME_RINVEXPIRY); one longer than MAX_VALIDITY is cut to it. data_sm has neither.
    """
    if isinstance(pdu, DataSm):
        return None, None
    try:
        send_at = parse_smpp_time(pdu.schedule_delivery_time, now)
    except SmppTimeError as error:
        raise BadTime(str(error), CommandStatus.ESME_RINVSCHED) from None
    try:
        expires_at = parse_smpp_time(pdu.validity_period, now)
    except SmppTimeError as error:
        raise BadTime(str(error), CommandStatus.ESME_RINVEXPIRY) from None
    if send_at is not None and send_at <= now:
        send_at = None
    if expires_at is None:
        return send_at, None
    start = send_at or now
    if expires_at <= start:
        raise BadTime(
            "validity_period ends before the message can be sent", CommandStatus.ESME_RINVEXPIRY
        )
    return send_at, min(expires_at, start + MAX_VALIDITY)


def status_of(error: TidingsError) -> int:
    """The closest command_status for a refusal of the acceptance pipeline."""
    if isinstance(error, BadTime):
        return error.status
    if isinstance(error, OptedOut):
        return ESME_ROPTEDOUT
    if isinstance(error, InvalidRequest):
        if error.reason == "bad_msisdn":
            return CommandStatus.ESME_RINVDSTADR
        if error.reason == "body_too_long":
            return CommandStatus.ESME_RINVMSGLEN
        if error.reason == "bad_originator":
            return CommandStatus.ESME_RINVSRCADR
        return CommandStatus.ESME_RSUBMITFAIL
    if isinstance(error, PricingError | RoutingError):
        return CommandStatus.ESME_RINVDSTADR
    if isinstance(error, InsufficientFunds):
        return CommandStatus.ESME_RSUBMITFAIL
    return CommandStatus.ESME_RSUBMITFAIL
