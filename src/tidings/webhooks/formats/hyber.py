"""Seed 000 (Hyber/GMS): its simple delivery report, POSTed as JSON.

Rendered by the DR query API's own `simple_report` (codes from `tidings.api.dr.statuses`),
so a report pushed here and the same message queried there always agree: `last_partner`
is "sms" once a supplier took (or refused) the message and "hyber" before; `time` is the
change's time in milliseconds; `extra_id` is the client's reference.
"""

from __future__ import annotations

from tidings.api.dr.render import simple_report
from tidings.webhooks.formats import JSON, Report, WebhookFormat, dump_json


def render(report: Report) -> str:
    return dump_json(simple_report(report.message, report.at))


FORMAT = WebhookFormat(name="hyber", content_type=JSON, render=render)
