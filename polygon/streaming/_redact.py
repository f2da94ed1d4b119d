"""Keeping the API key out of logs.

websockets logs every frame at DEBUG, the auth frame included. The engine gives
it this adapter instead of a plain logger: a record that names the key, or is an
auth frame (which websockets may truncate mid-key), is rewritten before it is
emitted.
"""

from __future__ import annotations

import logging
import re
from collections.abc import MutableMapping
from typing import Any

REDACTED = "***"
_AUTH_PARAMS = re.compile(r'("action"\s*:\s*"auth"\s*,\s*"params"\s*:\s*")[^"]*("?)')


def redact(text: str, secret: str) -> str:
    """``text`` with ``secret`` and any auth frame's params replaced."""
    if secret:
        text = text.replace(secret, REDACTED)
    if '"auth"' in text:
        text = _AUTH_PARAMS.sub(lambda m: m.group(1) + REDACTED + m.group(2), text)
    return text


class RedactingLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger adapter that formats each record itself and redacts the key."""

    def __init__(self, logger: logging.Logger, secret: str) -> None:
        super().__init__(logger, {})
        self._secret = secret

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        text = str(msg) % args if args else str(msg)
        self.logger.log(level, "%s", redact(text, self._secret), **kwargs)

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        return msg, kwargs
