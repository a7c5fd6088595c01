"""A supplier reached over HTTP with the client REST API of seed 004.

So one Tidings can use another Tidings (or any provider speaking that API) as a supplier:
messages go out as `individual` batches to `{url}/rest/sms/create`; statuses come back to our
`/api/dlr` as Smartswitch receipts (the upstream's client is set to the `smartswitch` webhook
format, with the DLR credentials of this supplier).

Options (`tidings suppliers create --kind http --option key=value`):
    url               the upstream's base URL (required)
    api_key           the X-API-KEY of our account there (required)
    tariff            the upstream tariff to ask for (default: the account's own)
    reference_prefix  prefix of the references we send (default "T"), see below
    timeout           seconds for one request, connect to last byte (default 30)
    connect_timeout   seconds to open the connection (default 10)
    max_batch         messages per request (default 500)

Idempotency: each message is sent with the reference `{prefix}{our message id}`. When a
submit is repeated (a crash after the upstream accepted, before we recorded it), the upstream
answers error 23 (reference used); we then look the reference up and take the id it already
has, so the upstream sends each message once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import httpx

from tidings.clock import Clock
from tidings.connectors.base import (
    OutboundMessage,
    ReportSink,
    SubmitOutcome,
    SubmitResult,
)
from tidings.errors import ConfigurationError

# Seed 004 error codes that say something about the whole account or a passing condition:
# the message itself is fine, so it is retried later rather than refused.
RETRY_CODES = frozenset({1, 3, 5, 8, 9, 11})
BATCH_TOO_LARGE = 12
REFERENCE_USED = 23


def _codes(value: Any) -> frozenset[int]:
    if value in (None, ""):
        return frozenset()
    try:
        return frozenset(int(item.strip(), 0) for item in str(value).split(",") if item.strip())
    except ValueError:
        raise ConfigurationError(f"http retryable: {value!r} is not a list of codes") from None


class HttpConnector:
    def __init__(self, supplier_id: int, options: dict[str, Any], clock: Clock) -> None:
        self.supplier_id = supplier_id
        self.clock = clock
        try:
            self.url = str(options["url"]).rstrip("/")
            self.api_key = str(options["api_key"])
        except KeyError as missing:
            raise ConfigurationError(f"http supplier needs the option {missing}") from None
        if not self.url.startswith(("http://", "https://")):
            raise ConfigurationError("http supplier url must start with http:// or https://")
        self.tariff = options.get("tariff")
        self.prefix = str(options.get("reference_prefix", "T"))
        self.timeout = float(options.get("timeout", 30))
        self.connect_timeout = min(self.timeout, float(options.get("connect_timeout", 10)))
        self.max_batch = max(1, int(options.get("max_batch", 500)))
        # Upstream error codes that mean "try elsewhere or later", not a refusal
        # (`retryable=...`, docs/routing.md): such answers fail over.
        self.retry_codes = RETRY_CODES | _codes(options.get("retryable"))
        self._http: httpx.AsyncClient | None = None

    async def start(self, reports: ReportSink) -> None:
        # Reports arrive through /api/dlr, not through this object.
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers={"X-API-KEY": self.api_key, "Content-Type": "application/json"},
            timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout),
            follow_redirects=False,
        )

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def reference(self, message: OutboundMessage) -> str:
        return f"{self.prefix}{message.message_id}"

    async def submit(self, batch: Sequence[OutboundMessage]) -> list[SubmitOutcome]:
        chunks = [batch[i : i + self.max_batch] for i in range(0, len(batch), self.max_batch)]
        results = await asyncio.gather(*(self._submit_batch(chunk) for chunk in chunks))
        return [outcome for chunk_outcomes in results for outcome in chunk_outcomes]

    async def _submit_batch(self, batch: Sequence[OutboundMessage]) -> list[SubmitOutcome]:
        body: dict[str, Any] = {
            "destination": "individual",
            "phones": [
                {
                    "msisdn": m.msisdn,
                    "reference": self.reference(m),
                    "originator": m.originator,
                    "body": m.body,
                }
                for m in batch
            ],
            # Whole hours left of the message's own validity, within the API's 1-72.
            "validity": max(1, min(72, _hours_left(batch, self.clock.now()))),
        }
        if self.tariff is not None:
            body["tariff"] = self.tariff
        answer = await self._post("/rest/sms/create", body)
        if "retry_after" in answer:
            return [
                SubmitOutcome(
                    m.message_id,
                    SubmitResult.RETRY,
                    error="upstream throttled (HTTP 429)",
                    retry_after=answer["retry_after"],
                )
                for m in batch
            ]
        code = _error_code(answer)
        if code == 0:
            by_reference = {
                str(item.get("reference")): str(item.get("id"))
                for item in answer.get("result", [])
                if isinstance(item, dict)
            }
            return [self._accepted_or_retry(m, by_reference.get(self.reference(m))) for m in batch]
        if code in self.retry_codes or code is None:
            return _all(batch, SubmitResult.RETRY, _describe(answer))
        if len(batch) > 1 and code == BATCH_TOO_LARGE:
            half = len(batch) // 2
            return [
                *await self._submit_batch(batch[:half]),
                *await self._submit_batch(batch[half:]),
            ]
        if len(batch) > 1:
            # The upstream refuses a batch whole for one bad item: send one by one to find it.
            outcomes: list[SubmitOutcome] = []
            for message in batch:
                outcomes.extend(await self._submit_batch([message]))
            return outcomes
        [message] = batch
        if code == REFERENCE_USED:
            return [await self._recover(message)]
        return [SubmitOutcome(message.message_id, SubmitResult.REJECTED, error=_describe(answer))]

    def _accepted_or_retry(
        self, message: OutboundMessage, upstream_id: str | None
    ) -> SubmitOutcome:
        if not upstream_id or upstream_id == "None":
            return SubmitOutcome(
                message.message_id, SubmitResult.RETRY, error="upstream answer lacks this message"
            )
        return SubmitOutcome(
            message.message_id, SubmitResult.ACCEPTED, supplier_message_id=upstream_id
        )

    async def _recover(self, message: OutboundMessage) -> SubmitOutcome:
        """The upstream has this reference already: it took the message on an earlier try."""
        answer = await self._get(f"/rest/sms/reference/{self.reference(message)}")
        if _error_code(answer) == 0 and answer.get("id"):
            return SubmitOutcome(
                message.message_id, SubmitResult.ACCEPTED, supplier_message_id=str(answer["id"])
            )
        return SubmitOutcome(
            message.message_id,
            SubmitResult.REJECTED,
            error=f"reference used upstream and not found: {_describe(answer)}",
        )

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        assert self._http is not None, "submit before start"
        return _json(await self._http.post(path, json=body))

    async def _get(self, path: str) -> dict[str, Any]:
        assert self._http is not None, "submit before start"
        return _json(await self._http.get(path))


def _json(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON; a non-JSON answer (a proxy's 502 page) reads as a retryable fault."""
    if response.status_code == 429:
        try:
            wait = float(response.headers.get("retry-after", "1"))
        except ValueError:
            wait = 1.0
        return {"error": None, "retry_after": wait}
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, list) and len(data) == 1 and isinstance(data[0], dict):
        data = data[0]  # the seed's Viber example wraps its answer in a list
    if not isinstance(data, dict):
        return {"error": None, "errorDescription": f"HTTP {response.status_code}, not JSON"}
    if response.status_code >= 500 and "error" not in data:
        data["error"] = None
    return data


def _error_code(answer: dict[str, Any]) -> int | None:
    value = answer.get("error")
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _describe(answer: dict[str, Any]) -> str:
    return f"upstream error {answer.get('error')}: {answer.get('errorDescription', '')}"[:200]


def _all(batch: Sequence[OutboundMessage], result: SubmitResult, error: str) -> list[SubmitOutcome]:
    return [SubmitOutcome(m.message_id, result, error=error) for m in batch]


def _hours_left(batch: Sequence[OutboundMessage], now: datetime) -> int:
    earliest = min(m.expires_at for m in batch)
    return int((earliest - now).total_seconds() // 3600)
