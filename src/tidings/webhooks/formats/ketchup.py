"""Seed 004 (KetchUp): the same status object `GET /rest/sms/{id}` answers, POSTed as JSON.

Seed 004 says the pushed package "contains the same information" as its status query, so
the body is exactly `render.status_body(message)`; a 2xx answer is a success.
"""

from __future__ import annotations

from tidings.api.client.render import status_body
from tidings.webhooks.formats import JSON, Report, WebhookFormat, dump_json


def render(report: Report) -> str:
    return dump_json(status_body(report.message))


FORMAT = WebhookFormat(name="ketchup", content_type=JSON, render=render)
