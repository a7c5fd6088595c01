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
    body = simple_report(report.message, report.at)
    if report.message.parent_id is not None and report.message.reference is None:
        # A fallback SMS: the same extra_id as the DR query gives (its Viber message's).
        body["extra_id"] = report.parent_reference
    return dump_json(body)


FORMAT = WebhookFormat(name="hyber", content_type=JSON, render=render)
