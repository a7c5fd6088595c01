"""``sent`` recorded as a supplier answers, not when its whole batch has been answered.

A connector that reports each message as its answer arrives (the SMPP connector: one
submit_sm_resp at a time, a window of them in flight) hands the lane's recorder every
message the supplier took. The recorder writes them in short transactions, one per group of
answers that came within ``group_delay`` of each other, so a slow answer in the window no
longer holds the others' ``sent`` (and their webhooks) back. Refusals and retries are left
for the batch's own transaction, as before; whatever a group failed to write goes there too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from tidings.connectors.base import SubmitOutcome, SubmitResult
from tidings.db.engine import inline_statements
from tidings.delivery.service import ClaimedBatch

log = logging.getLogger("tidings.delivery")

Record = Callable[[ClaimedBatch, Sequence[SubmitOutcome]], Awaitable[None]]


class AnswerRecorder:
    def __init__(self, batch: ClaimedBatch, record: Record, group_delay: float = 0.02) -> None:
        self.batch = batch
        self.record = record
        self.group_delay = group_delay
        self.recorded: set[int] = set()
        self._claimed = {m.message_id: m for m in batch.to_send}
        self._pending: list[SubmitOutcome] = []
        self._task: asyncio.Task[None] | None = None

    def answered(self, outcome: SubmitOutcome) -> None:
        """The connector's callback: one message's outcome, as soon as it is known."""
        if outcome.result is not SubmitResult.ACCEPTED or not outcome.supplier_message_id:
            return
        self._pending.append(outcome)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        with inline_statements():
            await self._write_groups()

    async def _write_groups(self) -> None:
        try:
            while self._pending:
                await asyncio.sleep(self.group_delay)  # let the answers of this moment join
                taken, self._pending = self._pending, []
                ids = {o.message_id for o in taken}
                claimed = [
                    self._claimed[o.message_id] for o in taken if o.message_id in self._claimed
                ]
                part = ClaimedBatch(claimed, self.batch.attempts, [])
                try:
                    await self.record(part, taken)
                except Exception:  # the batch's own transaction writes them instead
                    log.exception("recording %d answers early failed", len(taken))
                    continue
                self.recorded |= ids
        finally:
            self._task = None

    async def close(self) -> None:
        """Wait for the group being written (the batch's transaction comes after it)."""
        task = self._task
        if task is not None:
            await asyncio.shield(task)

    def rest(self, outcomes: Sequence[SubmitOutcome]) -> tuple[ClaimedBatch, list[SubmitOutcome]]:
        """The batch and outcomes still to record (what was recorded early taken out)."""
        done = self.recorded
        batch = ClaimedBatch(
            [m for m in self.batch.to_send if m.message_id not in done],
            self.batch.attempts,
            self.batch.expired,
        )
        return batch, [o for o in outcomes if o.message_id not in done]
