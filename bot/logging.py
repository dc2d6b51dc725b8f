"""One log format for the whole process, with secrets redacted."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from core.settings import Settings

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Shapes of secrets even when we were not told their values.
_SECRET_SHAPES = [
    re.compile(r"\b\d{6,12}:[A-Za-z0-9_-]{30,}\b"),  # Telegram bot token
    re.compile(r"\br8_[A-Za-z0-9]{20,}\b"),  # Replicate token
    re.compile(r"\bwhsec_[A-Za-z0-9+/=]{16,}"),  # webhook secret
    re.compile(r"\b[MN][A-Za-z\d_-]{23,25}\.[\w-]{6}\.[\w-]{27,38}\b"),  # Discord token
]
REDACTED = "[redacted]"


class RedactSecrets(logging.Filter):
    """Replaces known secret values (and secret-shaped strings) in every record."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        for shape in _SECRET_SHAPES:
            text = shape.sub(REDACTED, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redact(message)
        if record.exc_info and record.exc_info[1] is not None:
            # Render the traceback now, so the handler prints the redacted copy.
            formatted = logging.Formatter().formatException(record.exc_info)
            redacted = f"{redacted}\n{self.redact(formatted)}"
            record.exc_info = None
            record.exc_text = None
        if redacted != message or record.args:
            record.msg, record.args = redacted, None
        return True


def setup_logging(settings: Settings, *, extra_secrets: Iterable[str] = ()) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RedactSecrets([*settings.secrets(), *extra_secrets]))
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    # Client libraries log request URLs, which hold the Telegram token.
    for noisy in ("aiohttp.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
