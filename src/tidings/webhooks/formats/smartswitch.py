"""Seeds 001/002 (Smartswitch `/api/dlr`): the DLR request itself, made to the client's URL.

    POST {url}?message_id=…&message_state=…&request_id=…&_login=…&_password=…

with an empty body. What the change decides (message_id, message_state) is rendered when the
change happens and stored as the delivery's body, a query string; request_id (the delivery
id) and the credentials (the client's current webhook_login/webhook_password) are added
when the request is made, so a password change applies to retries too. The receiver
answers JSON:API: a 2xx whose JSON carries `errors` is a failure, like any non-2xx.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit, urlunsplit

import orjson

from tidings.messages.status import Status
from tidings.webhooks.formats import Outgoing, Report, StoredDelivery, WebhookFormat, is_2xx

QUERY = "application/x-www-form-urlencoded"

MESSAGE_STATE: dict[Status, str] = {
    Status.ACCEPTED: "accepted",
    Status.QUEUED: "accepted",
    Status.SCHEDULED: "accepted",
    Status.SENT: "enroute",
    Status.UNKNOWN: "unknown",
    Status.DELIVERED: "delivered",
    Status.EXPIRED: "expired",
    Status.UNDELIVERED: "undeliverable",
    Status.FAILED: "undeliverable",
    Status.REJECTED: "rejected",
    # Smartswitch has no Viber words: seen is delivered, no Viber account is undeliverable.
    Status.READ: "delivered",
    Status.NOT_VIBER_USER: "undeliverable",
}


def render(report: Report) -> str:
    message = report.message
    fields = {"message_id": str(message.id), "message_state": MESSAGE_STATE[report.status]}
    # Viber messages and their fallback SMS name their channel (docs/viber.md).
    if message.channel == "viber":
        fields["channel"] = "viber"
    if message.parent_id is not None:
        fields["channel"] = "sms"
        fields["parent_message_id"] = str(message.parent_id)
    return urlencode(fields)


def request(delivery: StoredDelivery) -> Outgoing:
    extra = {"request_id": str(delivery.id)}
    # The seed makes both mandatory; a client without them configured gets none, and its
    # receiver's authentication error is logged as a failed attempt.
    if delivery.login is not None:
        extra["_login"] = delivery.login
    if delivery.password is not None:
        extra["_password"] = delivery.password
    parts = urlsplit(delivery.url)
    query = "&".join(q for q in (parts.query, delivery.body, urlencode(extra)) if q)
    return Outgoing(urlunsplit(parts._replace(query=query, fragment="")), b"", None)


def succeeded(status_code: int, body: bytes) -> bool:
    if not is_2xx(status_code, body):
        return False
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return True  # a 2xx that is not JSON:API at all still says "received"
    return not (isinstance(answer, dict) and answer.get("errors"))


FORMAT = WebhookFormat(
    name="smartswitch", content_type=QUERY, render=render, request=request, succeeded=succeeded
)
