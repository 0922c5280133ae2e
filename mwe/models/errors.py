"""Errors of the model layer, and reading a provider's Retry-After."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from mwe.errors import ProviderError, UsageError


class MissingKeyError(UsageError):
    """No API key for a provider; the message names the environment variable to set."""


class ModelFailedError(ProviderError):
    """A request failed permanently (bad request, auth, quota) or ran out of retries."""


def connection_refused(exc: BaseException) -> bool:
    """Whether ``exc`` was caused by a refused connection (nothing listens at the address),
    found anywhere in its chain of causes, under whatever the SDK wrapped it in."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return True
        current = current.__cause__ or current.__context__
    return False


def header_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    if value := headers.get("retry-after-ms"):
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
