"""Secrets that must never be kept: API keys from the environment, and credentials in URLs.

Everything mwe stores, logs, exports or prints passes through :func:`redact` (free text) or
:func:`redact_url` (a URL it keeps, such as ``--base-url``), so a key or a password given to mwe
is used for the request and nowhere else.
"""

from __future__ import annotations

import os
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SECRET_ENV_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
MASK = "***"
# Query parameters that carry a credential in the wild (lower-cased for comparison).
SECRET_PARAMS = frozenset(
    {"api_key", "apikey", "api-key", "key", "token", "access_token", "auth", "password", "secret"}
)
_KEY_SHAPED = re.compile(r"\b(sk-[A-Za-z0-9_-]{4})[A-Za-z0-9_-]+")
# user:password@ (or a bare token@) after a scheme, as it appears inside free text.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")
_SECRET_QUERY = re.compile(
    r"(?i)([?&](?:" + "|".join(re.escape(p) for p in sorted(SECRET_PARAMS)) + r")=)[^&#\s]+"
)


def redact_url(url: str | None) -> str | None:
    """``url`` without its credentials: the user and password, and secret query parameters
    (``api_key``, ``key``, ``token``, ...) become ``***``. Other parts are left as they are."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL at all; mask whatever looks like a credential
        return redact(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        masked = [(k, MASK if k.lower() in SECRET_PARAMS else v) for k, v in pairs]
        query = urlencode(masked, safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact(text: str) -> str:
    """``text`` with API keys from the environment, anything shaped like a key, and the
    credentials of any URL in it masked."""
    for var in SECRET_ENV_VARS:
        value = os.environ.get(var)
        if value and len(value) >= 8:
            text = text.replace(value, MASK)
    text = _KEY_SHAPED.sub(rf"\1{MASK}", text)
    text = _USERINFO.sub(rf"\1{MASK}@", text)
    return _SECRET_QUERY.sub(rf"\1{MASK}", text)
