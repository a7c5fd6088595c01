"""An HLR provider reached over HTTP with seed 004's HLR API: another Tidings, or any
provider speaking it.

A query is created with `POST {url}/hlr/create` (reference `{prefix}{our lookup id}`) and its
result read with `GET {url}/hlr/{id}` until it is final; until then the lookup stays `sent`
here and the worker asks again. A create repeated after a crash (the upstream took it, we did
not record it) is answered with error 63; the reference is then looked up, so the upstream
runs and charges each lookup once.

Options (`tidings suppliers create --kind hlr_http --option key=value`):
    url               the upstream's base URL (required)
    api_key           the X-API-KEY of our account there (required)
    tariff            the upstream tariff to ask for (default: the account's own)
    reference_prefix  prefix of the references we send (default "H")
    timeout           seconds for one request (default 30)
    concurrency       requests in flight at once (default 16)
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx

from tidings.connectors.hlr.base import (
    FAILED,
    FINAL_STATUSES,
    HlrAnswer,
    HlrQuery,
    HlrResult,
    Outcome,
)
from tidings.errors import ConfigurationError

# Seed 004 codes about the account or a passing condition: the query is fine, ask later.
RETRY_CODES = frozenset({1, 3, 5, 8, 9, 11})
REFERENCE_USED = 63
NOT_FOUND = 60


class HttpHlrProvider:
    def __init__(self, provider_id: int, options: dict[str, Any]) -> None:
        self.provider_id = provider_id
        try:
            self.url = str(options["url"]).rstrip("/")
            self.api_key = str(options["api_key"])
        except KeyError as missing:
            raise ConfigurationError(f"hlr_http supplier needs the option {missing}") from None
        if not self.url.startswith(("http://", "https://")):
            raise ConfigurationError("hlr_http supplier url must start with http:// or https://")
        self.tariff = options.get("tariff")
        self.prefix = str(options.get("reference_prefix", "H"))
        try:
            self.timeout = float(options.get("timeout", 30))
            self.concurrency = max(1, int(options.get("concurrency", 16)))
        except (TypeError, ValueError):
            raise ConfigurationError("hlr_http timeout and concurrency are numbers") from None
        self._http: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers={"X-API-KEY": self.api_key},
            timeout=self.timeout,
            follow_redirects=False,
        )

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def reference(self, query: HlrQuery) -> str:
        return f"{self.prefix}{query.lookup_id}"

    async def lookup(self, queries: Sequence[HlrQuery]) -> list[HlrAnswer]:
        gate = asyncio.Semaphore(self.concurrency)

        async def one(query: HlrQuery) -> HlrAnswer:
            async with gate:
                try:
                    if query.provider_ref is None:
                        return await self._create(query)
                    return await self._poll(query, query.provider_ref)
                except (httpx.HTTPError, ValueError) as error:
                    return HlrAnswer(query.lookup_id, Outcome.RETRY, error=_describe(error))

        return list(await asyncio.gather(*(one(query) for query in queries)))

    async def _create(self, query: HlrQuery) -> HlrAnswer:
        body: dict[str, Any] = {"msisdn": query.msisdn, "reference": self.reference(query)}
        if self.tariff is not None:
            body["tariff"] = self.tariff
        data = await self._call("POST", "/hlr/create", json=body)
        code = _code(data)
        if code == 0 and data.get("id"):
            return HlrAnswer(query.lookup_id, Outcome.PENDING, provider_ref=str(data["id"]))
        if code == REFERENCE_USED:  # taken before, answer lost: find the id it has
            found = await self._call("GET", f"/hlr/reference/{self.reference(query)}")
            if _code(found) == 0 and found.get("id"):
                return self._read(query, str(found["id"]), found)
        return self._refused(query, code, data)

    async def _poll(self, query: HlrQuery, ref: str) -> HlrAnswer:
        data = await self._call("GET", f"/hlr/{ref}")
        code = _code(data)
        if code != 0:
            return self._refused(query, code, data)
        return self._read(query, ref, data)

    def _read(self, query: HlrQuery, ref: str, data: dict[str, Any]) -> HlrAnswer:
        status = str(data.get("status", ""))
        if status not in FINAL_STATUSES:
            return HlrAnswer(query.lookup_id, Outcome.PENDING, provider_ref=ref)
        given = data.get("details")
        details: dict[str, Any] = given if isinstance(given, dict) else {}
        network = data.get("network")
        return HlrAnswer(
            query.lookup_id,
            Outcome.RESULT,
            provider_ref=ref,
            result=HlrResult(
                status,
                str(network) if network and str(network).isdigit() else None,
                ported=str(details.get("ported", "0")) == "1",
                roaming=str(details.get("roaming", "0")) == "1",
            ),
        )

    def _refused(self, query: HlrQuery, code: int, data: dict[str, Any]) -> HlrAnswer:
        error = f"upstream error {code}: {data.get('errorDescription', '')}"[:200]
        if code in RETRY_CODES:
            return HlrAnswer(
                query.lookup_id, Outcome.RETRY, provider_ref=query.provider_ref, error=error
            )
        # Refused for good (a number it cannot look up, a lookup it lost): the answer is failed.
        return HlrAnswer(
            query.lookup_id,
            Outcome.RESULT,
            provider_ref=query.provider_ref,
            result=HlrResult(FAILED, None),
            error=error,
        )

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        if self._http is None:
            raise ConfigurationError("the hlr_http provider is not started")
        response = await self._http.request(method, path, **kwargs)
        if response.status_code >= 500:
            raise httpx.HTTPStatusError(
                f"HTTP {response.status_code}", request=response.request, response=response
            )
        data = response.json()
        if not isinstance(data, dict):
            raise ValueError(f"HTTP {response.status_code}: the answer is not a JSON object")
        return data


def _code(data: dict[str, Any]) -> int:
    """The seed's `error`, as a string or a number; absent (object answers) means 0."""
    value = data.get("error", 0)
    try:
        return int(value)
    except (TypeError, ValueError):
        return 5


def _describe(error: Exception) -> str:
    return (f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)[:200]
