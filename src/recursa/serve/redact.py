"""Secrets the proxy knows (credentials in the upstream URL, API keys) never leave it: not in
`/health`, error bodies or log lines. One registry of secrets per process; `scrub` replaces
each with a placeholder, and `redact_url` shows a URL without its userinfo."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

PLACEHOLDER = "[redacted]"
_lock = threading.Lock()
_secrets: set[str] = set()


def redact_url(url: str) -> str:
    """`url` with any `user:password@` replaced by `[redacted]@`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return scrub(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{PLACEHOLDER}@{host}"))


def url_secrets(url: str) -> list[str]:
    """The credentials in a URL's userinfo: the whole of it, each part, raw and decoded."""
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        return []
    if "@" not in netloc:
        return []
    userinfo = netloc.rsplit("@", 1)[0]
    user, _, password = userinfo.partition(":")
    found = {userinfo, unquote(userinfo), password, unquote(password)}
    # A user name alone is often not secret but may be (tokens as user names): redact it
    # when it is long enough not to be an ordinary word.
    if len(user) >= 8:
        found |= {user, unquote(user)}
    return [s for s in found if len(s) >= 3]


def register(values: Iterable[str | None]) -> None:
    """Add secrets to redact from now on (short or empty values are ignored)."""
    with _lock:
        _secrets.update(v for v in values if v and len(v.strip()) >= 3)


def scrub(text: str) -> str:
    """`text` with every registered secret replaced, longest first."""
    if not _secrets or not text:
        return text
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, PLACEHOLDER)
    return text


class RedactingFilter(logging.Filter):
    """Scrubs each record's final message (and traceback text) before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _secrets:
            return True
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True


def register_secrets(settings: Any) -> None:
    """Everything secret in the proxy's settings: both keys and the upstream URL's userinfo."""
    keys = [settings.api_key, settings.upstream_api_key]
    register([k.get_secret_value() for k in keys if k is not None])
    register(url_secrets(settings.upstream_url))
