"""The one exception tree of Tidings.

Every error the domain raises derives from :class:`TidingsError`. Domain code raises
the most specific class; the API adapters at the edge translate them into their own
wire format (seed 004 error codes, JSON:API errors, HTTP statuses) in one place each.

    TidingsError
    ├── NotFound                  a thing the caller named does not exist (for them)
    ├── Conflict                  the request collides with stored state (duplicate reference)
    ├── InvalidRequest            the request is malformed or breaks a field rule
    ├── AuthError                 wrong or missing credentials
    │   └── ClientBlocked         credentials fine, the account is blocked
    ├── InsufficientFunds         the balance does not cover the charge
    ├── RateLimited               the caller's request rate limit is spent for now
    ├── PricingError              no price for a destination, unknown or inactive tariff
    ├── RoutingError              no supplier route for a destination
    ├── OptedOut                  the number asked this client to stop (docs/optouts.md)
    ├── ConnectorError            an upstream supplier failed a submit
    │   ├── TemporaryConnectorError   worth retrying later (timeout, throttling, 5xx)
    │   └── PermanentConnectorError   the upstream refused the message for good
    └── ConfigurationError        the operator's configuration is unusable

Each carries a machine-readable ``reason`` (a short snake_case word) so that adapters can
map to their codes without parsing messages, and an optional ``field`` naming the input.
"""

from __future__ import annotations


class TidingsError(Exception):
    """Base of every error raised on purpose by Tidings."""

    reason: str = "error"

    def __init__(self, message: str, *, reason: str | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.field = field


class NotFound(TidingsError):
    reason = "not_found"


class Conflict(TidingsError):
    reason = "conflict"


class InvalidRequest(TidingsError):
    reason = "invalid"


class AuthError(TidingsError):
    reason = "bad_credentials"


class ClientBlocked(AuthError):
    reason = "blocked"


class InsufficientFunds(TidingsError):
    reason = "insufficient_funds"


class RateLimited(TidingsError):
    """Too many requests for now; `retry_after` says in how many seconds one may go."""

    reason = "rate_limited"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        field: str | None = None,
        retry_after: float = 1.0,
    ):
        super().__init__(message, reason=reason, field=field)
        self.retry_after = retry_after


class PricingError(TidingsError):
    reason = "no_price"


class RoutingError(TidingsError):
    reason = "no_route"


class OptedOut(TidingsError):
    """The recipient is on the client's opt-out list: refused per number, never charged."""

    reason = "opted_out"

    def __init__(self, msisdn: str, *, where: str = "", message: str | None = None) -> None:
        super().__init__(message or f"{where}{msisdn} has opted out of this client's messages")
        self.msisdn = msisdn


class ConnectorError(TidingsError):
    reason = "connector_error"


class TemporaryConnectorError(ConnectorError):
    reason = "temporary"


class PermanentConnectorError(ConnectorError):
    reason = "permanent"


class ConfigurationError(TidingsError):
    reason = "configuration"
