"""Secrets never reach the log, even inside tracebacks or request URLs."""

from __future__ import annotations

import logging

from bot.logging import RedactSecrets, setup_logging
from core.settings import load_settings

TOKEN = "123456789:AAE" + "x" * 32


def test_known_and_secret_shaped_values_are_redacted(capsys, monkeypatch):
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_" + "k" * 30)
    settings = load_settings(None, telegram_bot_token=TOKEN)
    setup_logging(settings)
    log = logging.getLogger("lokiz.test")
    log.warning("GET https://api.telegram.org/bot%s/getMe", TOKEN)
    log.warning("replicate says r8_%s", "k" * 30)
    try:
        raise RuntimeError(f"failed for {TOKEN}")
    except RuntimeError:
        log.exception("boom")
    err = capsys.readouterr().err
    assert TOKEN not in err and "k" * 30 not in err
    assert err.count("[redacted]") >= 3
    assert "RuntimeError" in err


def test_plain_messages_are_untouched():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "job %s done", ("j1",), None)
    RedactSecrets(["s3cret"]).filter(record)
    assert record.getMessage() == "job j1 done"
