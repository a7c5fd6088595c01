"""A supplier's messages-per-second limit, held across every process that shares the database.

The limit is one row per supplier (`supplier_rate_buckets`, delivery/buckets.py) holding the
moment up to which the supplier's rate is already booked: a token bucket kept as its
"theoretical arrival time" (the GCRA form of a token bucket), so that taking tokens is a
single upsert and no clock-dependent refill has to be written back.

A lane claims its batch first and then books it: n messages push the booked moment on by
n / rate, from the later of itself and now. The batch may go once no more than one burst of
the bookings is still in the future. Lanes of other processes that book meanwhile queue
behind it and wait their turn, computed from the answer, not polled. So:

- the cost is one tiny statement per batch, and none at all for an idle lane (it claims
  nothing and books nothing) or for a supplier with no limit (it has no bucket);
- time nobody used is not banked beyond one burst (the booking starts from now at the
  earliest), so an idle supplier gets at most `burst` messages at once, then its rate;
- the supplier gets at most rate × T + burst messages in any T seconds, whatever the number
  of processes: each message's share of the rate is booked exactly once.

Processes on several hosts read the same row with their own clocks: they are assumed to be
NTP-synchronised; a host whose clock runs d seconds ahead can send at most rate × d
messages early, once, as the booked moment only moves forward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tidings.clock import Clock
from tidings.db.engine import transaction
from tidings.delivery.buckets import RateBucketRepository

# The burst: how much of the rate may go at once (0.1 s: 5 messages at 50/s). Small, so
# that no second sees more than about 10 % over the contracted rate.
BURST_SECONDS = 0.1
# A batch never holds more than a second's worth of the rate.
LONGEST_BATCH_SECONDS = 1.0

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def micros(moment: datetime) -> int:
    """Microseconds since the epoch: the integer time the bucket rows are kept in."""
    return (moment - _EPOCH) // _MICROSECOND


@dataclass(frozen=True, slots=True)
class Booking:
    count: int  # messages booked
    span_us: int  # their share of the supplier's time
    wait: float  # seconds until they may go (0: at once)


class SharedThroughputLimit:
    """One lane's handle on its supplier's shared limit."""

    def __init__(
        self,
        supplier_id: int,
        rate: float,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        burst_seconds: float = BURST_SECONDS,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"a throughput limit must be positive, not {rate}")
        self.supplier_id = supplier_id
        self.rate = rate
        self.sessions = sessions
        self.clock = clock
        self.burst = max(1, math.floor(rate * burst_seconds))
        self._longest = max(self.burst, math.floor(rate * LONGEST_BATCH_SECONDS))
        self._busy_seconds = 0.0

    def batch_limit(self, batch_size: int) -> int:
        """How many messages the next batch may hold.

        One burst; or, when the lane's last batch kept it busy for longer than a burst lasts
        (a supplier that answers slowly), as many as the rate allows in that time, so that
        one lane still reaches the full rate. Never more than a second's worth.
        """
        fits = math.floor(self.rate * self._busy_seconds)
        return max(1, min(batch_size, self._longest, max(self.burst, fits)))

    def busy_for(self, seconds: float) -> None:
        """How long the lane's last batch took, waiting for the limit excluded."""
        self._busy_seconds = seconds

    def span_us(self, count: int) -> int:
        # Rounded up: a limit is never exceeded by rounding.
        return math.ceil(count * 1_000_000 / self.rate)

    async def book(self, count: int) -> Booking:
        """Book `count` messages' share of the rate (one short transaction)."""
        span = self.span_us(count)
        async with transaction(self.sessions) as session:
            booked_until = await RateBucketRepository(session).book(
                self.supplier_id, micros(self.clock.now()), span
            )
        # It may go once at most one burst (or this batch, if larger) is still ahead.
        may_go = booked_until - self.span_us(max(self.burst, count))
        wait = max(0.0, (may_go - micros(self.clock.now())) / 1_000_000)
        return Booking(count, span, wait)

    async def give_back(self, booking: Booking) -> None:
        """Return a booking whose messages will not go (one short transaction)."""
        async with transaction(self.sessions) as session:
            await RateBucketRepository(session).give_back(self.supplier_id, booking.span_us)
