"""A third-party ESME for tests: smpplib (blocking), driven from a thread."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import smpplib.client
import smpplib.consts
import smpplib.exceptions
import smpplib.gsm

from tidings.accounts.service import Credentials


@dataclass
class Esme:
    """An smpplib client that records what it is sent."""

    port: int
    client: Any = None
    sent: list[Any] = field(default_factory=list)  # submit_sm_resp (also errors)
    received: list[Any] = field(default_factory=list)  # deliver_sm

    def __post_init__(self) -> None:
        self.client = smpplib.client.Client(
            "127.0.0.1", self.port, timeout=0.2, allow_unknown_opt_params=True
        )
        self.client.set_message_sent_handler(lambda pdu, **_: self.sent.append(pdu))
        self.client.set_message_received_handler(lambda pdu, **_: self.received.append(pdu))
        self.client.set_error_pdu_handler(lambda pdu: None)  # sent_handler has it

    async def bind(self, credentials: Credentials, mode: str = "transceiver") -> None:
        await asyncio.to_thread(self.client.connect)
        bind = getattr(self.client, f"bind_{mode}")
        await asyncio.to_thread(bind, system_id=credentials.login, password=credentials.password)

    async def submit(self, text: str, phone: str = "380971234567", **extra: Any) -> None:
        parts, coding, esm_class = smpplib.gsm.make_parts(text)
        for part in parts:
            await asyncio.to_thread(
                self.client.send_message,
                source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
                source_addr="Tidings",
                dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
                dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
                destination_addr=phone,
                short_message=part,
                data_coding=coding,
                esm_class=esm_class,
                registered_delivery=1,
                **extra,
            )

    async def submit_long(
        self, text: str, reference: int, *, sar: bool = False, every_part: bool = True
    ) -> dict[int, int]:
        """Send ``text`` as smpplib cuts it (blindly, at octets: a surrogate pair or a GSM-7
        escape may be split), by UDH or by SAR TLVs, a receipt asked on every part or on the
        first only; returns {sequence_number: registered_delivery} of the parts."""
        parts, coding, esm_class = smpplib.gsm.make_parts(text, use_udhi=not sar)
        asked: dict[int, int] = {}
        for seqnum, part in enumerate(parts, start=1):
            extra: dict[str, Any] = {}
            if sar:
                extra = {
                    "sar_msg_ref_num": reference,
                    "sar_total_segments": len(parts),
                    "sar_segment_seqnum": seqnum,
                }
            registered_delivery = 1 if every_part or seqnum == 1 else 0
            pdu = await asyncio.to_thread(
                self.client.send_message,
                source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
                source_addr="Tidings",
                dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
                dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
                destination_addr="380971234567",
                short_message=part,
                data_coding=coding,
                esm_class=esm_class,
                registered_delivery=registered_delivery,
                **extra,
            )
            asked[pdu.sequence] = registered_delivery
        return asked

    async def pump(self, until: Callable[[], bool], within: float = 15) -> None:
        def loop() -> None:
            deadline = time.monotonic() + within
            while not until() and time.monotonic() < deadline:
                self.client.read_once()

        await asyncio.to_thread(loop)
        assert until(), f"sent={self.sent} received={self.received}"

    async def close(self) -> None:
        def close() -> None:
            try:
                if self.client.state in ("BOUND_TX", "BOUND_RX", "BOUND_TRX"):
                    self.client.unbind()
            except (smpplib.exceptions.ConnectionError, smpplib.exceptions.PDUError, OSError):
                pass
            self.client.disconnect()

        await asyncio.to_thread(close)
