"""The HTTP connector against a real upstream: another Tidings, run as `tidings serve`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.gateway import Gateway
from tests.e2e.test_gateway import setup_world
from tidings.clock import SystemClock
from tidings.connectors.base import OutboundMessage, SubmitResult, SupplierReport
from tidings.connectors.http import HttpConnector


@pytest.fixture
def upstream(database_url: str, tmp_path: Path) -> Iterator[tuple[Gateway, dict[str, str]]]:
    node = Gateway(database_url, tmp_path)
    try:
        client = setup_world(node, tmp_path)
        node.start()
        yield node, client
    finally:
        node.stop()


def outbound(message_id: int, msisdn: str, body: str = "hello") -> OutboundMessage:
    return OutboundMessage(
        message_id=message_id,
        msisdn=msisdn,
        originator="Tidings",
        body=body,
        encoding="gsm7",
        parts=1,
        expires_at=datetime.now(UTC) + timedelta(hours=5),
    )


async def ignore(_supplier_id: int, _reports: object) -> None:
    return None


async def connector_for(url: str, api_key: str, **options: object) -> HttpConnector:
    connector = HttpConnector(1, {"url": url, "api_key": api_key, **options}, SystemClock())
    await connector.start(ignore)  # type: ignore[arg-type]
    return connector


async def test_batch_is_accepted_with_upstream_ids(
    upstream: tuple[Gateway, dict[str, str]],
) -> None:
    node, client = upstream
    connector = await connector_for(node.base_url, client["live_key"], max_batch=2)
    try:
        batch = [outbound(100 + i, f"38097300000{i}") for i in range(5)]
        outcomes = await connector.submit(batch)
    finally:
        await connector.stop()
    assert {o.message_id for o in outcomes} == {100, 101, 102, 103, 104}
    assert all(o.result is SubmitResult.ACCEPTED and o.supplier_message_id for o in outcomes)
    assert len({o.supplier_message_id for o in outcomes}) == 5


async def test_a_repeated_submit_is_sent_once_upstream(
    upstream: tuple[Gateway, dict[str, str]],
) -> None:
    """A crash between the upstream's answer and our record means the batch comes again."""
    node, client = upstream
    connector = await connector_for(node.base_url, client["live_key"])
    try:
        batch = [outbound(7, "380973000007"), outbound(8, "380973000008")]
        first = await connector.submit(batch)
        again = await connector.submit(batch)
    finally:
        await connector.stop()
    assert [(o.message_id, o.supplier_message_id) for o in again] == [
        (o.message_id, o.supplier_message_id) for o in first
    ]
    assert all(o.result is SubmitResult.ACCEPTED for o in again)
    # The upstream charged two messages, not four.
    assert node.cli("clients", "show", str(client["id"]))["balance"] == "499.960000"


async def test_one_bad_message_does_not_sink_the_batch(
    upstream: tuple[Gateway, dict[str, str]],
) -> None:
    node, client = upstream
    connector = await connector_for(node.base_url, client["live_key"])
    try:
        outcomes = await connector.submit(
            [outbound(1, "380973000001"), outbound(2, "4915123456789"), outbound(3, "380973000003")]
        )
    finally:
        await connector.stop()
    results = {o.message_id: o for o in outcomes}
    assert results[1].result is SubmitResult.ACCEPTED
    assert results[3].result is SubmitResult.ACCEPTED
    assert results[2].result is SubmitResult.REJECTED
    assert results[2].error is not None and "upstream error 7" in results[2].error


async def test_account_problems_are_retried_not_rejected(
    upstream: tuple[Gateway, dict[str, str]],
) -> None:
    node, _client = upstream
    connector = await connector_for(node.base_url, "live_wrong")
    try:
        outcomes = await connector.submit([outbound(1, "380973000001")])
    finally:
        await connector.stop()
    assert outcomes[0].result is SubmitResult.RETRY
    assert outcomes[0].error is not None and "upstream error 1" in outcomes[0].error


async def test_unreachable_upstream_raises_for_the_lane_to_retry() -> None:
    from tests.e2e.gateway import free_port

    connector = await connector_for(f"http://127.0.0.1:{free_port()}", "live_x", timeout=2)
    try:
        with pytest.raises(Exception, match="onnect"):
            await connector.submit([outbound(1, "380973000001")])
    finally:
        await connector.stop()


def test_options_are_checked() -> None:
    from tidings.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        HttpConnector(1, {"api_key": "x"}, SystemClock())
    with pytest.raises(ConfigurationError):
        HttpConnector(1, {"url": "ftp://x", "api_key": "x"}, SystemClock())
    assert SupplierReport  # the connector reports through /api/dlr, not the sink
