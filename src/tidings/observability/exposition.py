"""`GET /metrics` for processes without the HTTP API (`tidings worker --metrics-port`).

A few lines of HTTP/1.1 on asyncio rather than a second web server: one request per
connection, GET only, headers bounded. It runs in the worker's own event loop, so queue
depths are counted with the worker's engine like the API's `/metrics` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from tidings.observability.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger("tidings.observability")

MAX_HEAD_BYTES = 8192
READ_TIMEOUT = 10.0


class MetricsServer:
    def __init__(self, metrics: Metrics, host: str, port: int) -> None:
        self.metrics = metrics
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, limit=MAX_HEAD_BYTES
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
            method, target, *_ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            path = target.split("?", 1)[0]
            if method != "GET":
                status, body, kind = "405 Method Not Allowed", b"GET only\n", "text/plain"
            elif path != "/metrics":
                status, body, kind = "404 Not Found", b"see /metrics\n", "text/plain"
            else:
                status, body, kind = "200 OK", await scrape(self.metrics), CONTENT_TYPE
            writer.write(
                f"HTTP/1.1 {status}\r\ncontent-type: {kind}\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (
            TimeoutError,
            ValueError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ConnectionError,
        ):
            pass  # a client that sends garbage or goes away gets the connection closed
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def scrape(metrics: Metrics) -> bytes:
    """The exposition text; the counters alone when the depths can't be counted (database
    away), so a scrape still shows what the process did."""
    try:
        await metrics.refresh()
    except Exception:
        log.warning("queue depths could not be counted", exc_info=True)
    return metrics.render()
