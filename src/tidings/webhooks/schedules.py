"""Retry schedules: how long to wait after each failed attempt before trying again.

A schedule is stored on the client as a spec: a preset name or comma-separated seconds
("60,360,3600"). Its length is the number of retries, so a delivery is tried at most
len(schedule) + 1 times; after the last failure it is kept as `failed` in the log.
"""

from __future__ import annotations

from types import MappingProxyType

from tidings.errors import InvalidRequest

# Seed 004: "5 attempts: after a minute, 6 minutes, an hour, 12 hours and 24 hours".
KETCHUP = (60, 360, 3600, 43200, 86400)
# Seed 003: "repeated at 10-minute intervals until a 200 OK, up to 10 times".
IP1 = (600,) * 10

PRESETS = MappingProxyType({"ketchup": KETCHUP, "ip1": IP1})
DEFAULT_SCHEDULE = "ketchup"

# Each webhook format's own provider's schedule (docs/webhooks.md, "Retry schedules"): iP.1's
# from seed 003; seeds 000 (Hyber) and 001/002 (Smartswitch) publish none, so seed 004's.
FORMAT_SCHEDULES = MappingProxyType(
    {"ketchup": "ketchup", "ip1": "ip1", "hyber": "ketchup", "smartswitch": "ketchup"}
)


def default_schedule(format_name: str) -> str:
    return FORMAT_SCHEDULES.get(format_name, DEFAULT_SCHEDULE)


def schedule_after_format_change(current: str, old_format: str, new_format: str) -> str:
    """The schedule a client gets when its format changes and no schedule is given: the new
    format's default if it was on the old one's, else the schedule the operator chose."""
    if current == default_schedule(old_format):
        return default_schedule(new_format)
    return current


# A week between two attempts and 50 retries are far beyond any seed; larger values are
# more likely typos (milliseconds for seconds) than intent.
MAX_DELAY = 7 * 86400
MAX_RETRIES = 50


def parse_schedule(spec: str) -> list[int]:
    """The delays of a spec, in seconds; InvalidRequest says what is wrong with a bad one."""
    text = spec.strip().lower()
    if text in PRESETS:
        return list(PRESETS[text])
    if not text:
        raise _invalid(spec, "it is empty")
    delays: list[int] = []
    for item in text.split(","):
        item = item.strip()
        if not item.isdigit():
            raise _invalid(spec, f"{item!r} is neither a preset nor a whole number of seconds")
        delay = int(item)
        if not 0 < delay <= MAX_DELAY:
            raise _invalid(spec, f"each delay must be 1 to {MAX_DELAY} seconds, not {delay}")
        delays.append(delay)
    if len(delays) > MAX_RETRIES:
        raise _invalid(spec, f"at most {MAX_RETRIES} retries, not {len(delays)}")
    return delays


def normalize_schedule(spec: str) -> str:
    """The form to store: a preset's name, or the delays without spaces."""
    text = spec.strip().lower()
    if text in PRESETS:
        return text
    return ",".join(str(delay) for delay in parse_schedule(spec))


def _invalid(spec: str, why: str) -> InvalidRequest:
    presets = ", ".join(PRESETS)
    return InvalidRequest(
        f"retry schedule {spec!r} is invalid: {why} "
        f"(use a preset: {presets}, or seconds like '60,600,3600')",
        reason="bad_retry_schedule",
        field="retry_schedule",
    )
