"""The Metrics object on its own: what each recording call adds to the exposition text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import message_record
from tidings.accounts.service import Caller, KeyKind
from tidings.connectors.base import SubmitOutcome, SubmitResult, SupplierReport
from tidings.messages.acceptance import PreparedSms, PricedItem, Quote, SmsItem, SmsRequest
from tidings.messages.changes import AppliedChange, MessageRecord, StatusChange
from tidings.messages.status import Status
from tidings.numbering import parse_msisdn
from tidings.observability.histogram import BatchHistogram
from tidings.observability.metrics import Metrics, webhook_outcome
from tidings.webhooks.repository import Outcome

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the exposition text, by name and label set, parsed back."""
    text = metrics.render().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return samples(metrics).get((name, frozenset(labels.items())), 0.0)


def message(mid: int, *, client: int = 7, supplier: int = 3, country: str = "UA") -> MessageRecord:
    return message_record(
        id=mid,
        client_id=client,
        supplier_id=supplier,
        country=country,
        channel="sms",
        time_in=T0,
        status=Status.QUEUED.value,
    )


def applied(row: MessageRecord, status: Status, after: float) -> AppliedChange:
    previous = Status(row.status)
    row.status = status.value
    change = StatusChange(row.id, status, T0 + timedelta(seconds=after))
    return AppliedChange(message=row, previous=previous, change=change)


MESSAGE = {"client_id": "7", "supplier_id": "3", "country": "UA", "channel": "sms"}


def test_sent_and_final_counters_and_the_accept_to_final_histogram() -> None:
    metrics = Metrics()
    one, two, three = message(1), message(2), message(3, country="SE")
    metrics.changes_applied(
        [applied(one, Status.SENT, 1), applied(two, Status.SENT, 1), applied(three, Status.SENT, 2)]
    )
    metrics.changes_applied(
        [
            applied(one, Status.DELIVERED, 4),
            applied(two, Status.UNDELIVERED, 40),
            applied(three, Status.UNKNOWN, 50),  # intermediate: neither sent nor final
        ]
    )
    assert value(metrics, "tidings_messages_sent_total", **MESSAGE) == 2
    assert value(metrics, "tidings_messages_sent_total", **{**MESSAGE, "country": "SE"}) == 1
    assert value(metrics, "tidings_messages_final_total", **MESSAGE, status="delivered") == 1
    assert value(metrics, "tidings_messages_final_total", **MESSAGE, status="undelivered") == 1
    delivered = {"supplier_id": "3", "channel": "sms", "status": "delivered"}
    name = "tidings_message_accept_to_final_seconds"
    assert value(metrics, f"{name}_count", **delivered) == 1
    assert value(metrics, f"{name}_sum", **delivered) == 4
    assert value(metrics, f"{name}_bucket", **delivered, le="5.0") == 1
    assert value(metrics, f"{name}_bucket", **delivered, le="1.0") == 0
    undelivered = {**delivered, "status": "undelivered"}
    assert value(metrics, f"{name}_bucket", **undelivered, le="30.0") == 0
    assert value(metrics, f"{name}_bucket", **undelivered, le="60.0") == 1


def test_accepted_counts_each_item_by_its_supplier_and_country() -> None:
    numbers = ["380971000000", "380971000001", "46701234567"]
    items = [
        PricedItem(
            index=i,
            item=SmsItem(number, None, "test", "hi"),
            destination=parse_msisdn(number),
            encoding="gsm7",
            parts=1,
            price=Decimal("0.02"),
            currency="EUR",
            supplier_id=3 if i < 2 else 4,
        )
        for i, number in enumerate(numbers)
    ]
    prepared = PreparedSms(
        caller=Caller(client_id=7, key_kind=KeyKind.LIVE, tariff=0),
        request=SmsRequest(destination="phones", items=[item.item for item in items]),
        quote=Quote(items=items, total_price=Decimal("0.06"), currency="EUR", tariff=0),
    )
    metrics = Metrics()
    metrics.messages_accepted(prepared, "sms")
    metrics.messages_accepted(prepared, "sms")
    assert value(metrics, "tidings_messages_accepted_total", **MESSAGE) == 4
    se = {**MESSAGE, "supplier_id": "4", "country": "SE"}
    assert value(metrics, "tidings_messages_accepted_total", **se) == 2


def state_of(metrics: Metrics, supplier: str) -> str:
    [on] = [
        labels["tidings_supplier_state"]
        for (name, labels_), v in samples(metrics).items()
        if name == "tidings_supplier_state" and v == 1
        for labels in [dict(labels_)]
        if labels["supplier_id"] == supplier
    ]
    return on


def test_supplier_state_follows_what_each_submit_showed() -> None:
    metrics = Metrics()
    metrics.supplier_started(3)
    assert state_of(metrics, "3") == "up"
    ok = [SubmitOutcome(1, SubmitResult.ACCEPTED, "a"), SubmitOutcome(2, SubmitResult.REJECTED)]
    metrics.submitted(3, 0.02, ok)
    assert state_of(metrics, "3") == "up"
    metrics.submitted(3, 30.0, None)  # raised or timed out
    assert state_of(metrics, "3") == "down"
    metrics.submitted(3, 0.01, [SubmitOutcome(1, SubmitResult.RETRY, retry_after=2.0)])
    assert state_of(metrics, "3") == "throttled"
    metrics.submitted(3, 0.01, [SubmitOutcome(1, SubmitResult.RETRY, error="HTTP 502")])
    assert state_of(metrics, "3") == "down"
    metrics.submitted(3, 0.01, ok, held_back=True)  # our own throughput limit
    assert state_of(metrics, "3") == "throttled"
    metrics.supplier_failed_to_start(5)
    assert state_of(metrics, "5") == "down"

    errors = "tidings_supplier_errors_total"
    assert value(metrics, errors, supplier_id="3", kind="submit") == 1
    assert value(metrics, errors, supplier_id="3", kind="temporary") == 2
    assert value(metrics, errors, supplier_id="3", kind="rejected") == 2
    assert value(metrics, errors, supplier_id="5", kind="start") == 1
    assert value(metrics, "tidings_supplier_submit_seconds_count", supplier_id="3") == 5
    assert value(metrics, "tidings_supplier_submit_seconds_bucket", supplier_id="3", le="0.01") == 3

    metrics.supplier_removed(5)
    assert not any(
        dict(labels).get("supplier_id") == "5"
        for name, labels in samples(metrics)
        if name == "tidings_supplier_state"
    )


def test_reports_received_by_supplier_and_status() -> None:
    metrics = Metrics()
    metrics.reports_received(
        3,
        [
            SupplierReport("a", Status.DELIVERED, T0),
            SupplierReport("b", Status.DELIVERED, T0),
            SupplierReport("c", Status.UNDELIVERED, T0),
        ],
    )
    metrics.reports_received(4, [SupplierReport("d", Status.DELIVERED, T0)])
    received = "tidings_dlr_received_total"
    assert value(metrics, received, supplier_id="3", status="delivered") == 2
    assert value(metrics, received, supplier_id="3", status="undelivered") == 1
    assert value(metrics, received, supplier_id="4", status="delivered") == 1


def outcome(state: str, *, sent: bool = True) -> Outcome:
    return Outcome(
        delivery_id=1,
        lease=T0,
        attempt={"delivery_id": 1} if sent else None,
        state=state,
        attempts=1,
        next_attempt_at=T0,
        finished_at=None,
        last_error=None,
    )


def test_webhook_outcomes() -> None:
    assert webhook_outcome(outcome("delivered")) == "delivered"
    assert webhook_outcome(outcome("pending")) == "retry"
    assert webhook_outcome(outcome("failed")) == "failed"
    assert webhook_outcome(outcome("pending", sent=False)) == "unsent"
    metrics = Metrics()
    metrics.webhook_recorded(7, outcome("pending"))
    metrics.webhook_recorded(7, outcome("pending"))
    metrics.webhook_recorded(7, outcome("delivered"))
    attempts = "tidings_webhook_attempts_total"
    assert value(metrics, attempts, client_id="7", outcome="retry") == 2
    assert value(metrics, attempts, client_id="7", outcome="delivered") == 1


def test_each_metrics_object_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.reports_received(3, [SupplierReport("a", Status.DELIVERED, T0)])
    received = "tidings_dlr_received_total"
    assert value(first, received, supplier_id="3", status="delivered") == 1
    assert value(second, received, supplier_id="3", status="delivered") == 0


def test_the_batch_histogram_renders_what_the_client_histogram_would() -> None:
    values = [0.0, 0.5, 1.0, 1.5, 59.9, 60.0, 61.0, 3600.0, 10**9]
    buckets = (1, 60, 3600)
    theirs = CollectorRegistry()
    reference = Histogram("h", "h", ("k",), buckets=buckets, registry=theirs)
    ours = CollectorRegistry()
    batched = BatchHistogram("h", "h", ("k",), buckets)
    ours.register(batched)
    for value in values:
        reference.labels("a").observe(value)
    batched.observe_many(("a",), values[:4])
    batched.observe_many(("a",), values[4:])

    def series(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        text = generate_latest(registry).decode()
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if not s.name.endswith("_created")
        }

    assert series(ours) == series(theirs)
    assert series(ours)[("h_bucket", frozenset({("k", "a"), ("le", "60.0")}))] == 6
