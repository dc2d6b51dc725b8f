"""The command line as an operator uses it: real subprocesses, a real SQLite file."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def run_bot(*args: str, env: dict[str, str] | None = None, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True, text=True, cwd=cwd, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def test_help_lists_every_command(tmp_path):
    out = run_bot("--help", cwd=tmp_path).stdout
    for command in ("run", "capture", "sheet", "render", "templates", "credits", "migrate"):
        assert re.search(rf"\b{command}\b", out), command


def test_grant_then_show_prints_balance_and_entry(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}
    granted = run_bot("credits", "grant", "telegram:42", "100", "--reason", "test", env=env, cwd=tmp_path)
    assert granted.returncode == 0, granted.stderr
    shown = run_bot("credits", "show", "telegram:42", env=env, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    # Granting before their first message settles their starter credits (50) first.
    assert "balance 150" in granted.stdout and "balance 150" in shown.stdout
    assert re.search(r"\+100\s+grant\s+by cli\s+test", shown.stdout)
    assert re.search(r"\+50\s+starter", shown.stdout)


@pytest.mark.parametrize(("target", "amount"), [("telegram:42", "٥"), ("telegram:42", "²"),
                                                ("telegram:٤٢", "5"), ("telegram:042", "5")])
def test_credits_take_ascii_digits_only(tmp_path, target, amount):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}
    granted = run_bot("credits", "grant", target, amount, env=env, cwd=tmp_path)
    assert granted.returncode != 0 and "Traceback" not in granted.stderr
    assert "not seen yet" in run_bot("credits", "show", "telegram:42", env=env, cwd=tmp_path).stdout


def test_revoke_past_the_balance_is_refused_in_one_line(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "STARTER_CREDITS": "0"}
    run_bot("credits", "grant", "discord:7", "10", env=env, cwd=tmp_path)
    revoked = run_bot("credits", "revoke", "discord:7", "11", env=env, cwd=tmp_path)
    assert revoked.returncode != 0
    assert revoked.stderr.count("\n") == 1 and "balance is 10" in revoked.stderr
    assert "balance 10" in run_bot("credits", "show", "discord:7", env=env, cwd=tmp_path).stdout


def test_migrate_twice_is_harmless(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}"}
    first = run_bot("migrate", env=env, cwd=tmp_path)
    second = run_bot("migrate", env=env, cwd=tmp_path)
    assert first.returncode == second.returncode == 0
    assert "applied" in first.stdout and "up to date" in second.stdout


def test_migrate_names_each_migration_it_applied(tmp_path):
    from core.storage.base import migrations

    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}"}
    first = run_bot("migrate", env=env, cwd=tmp_path)
    second = run_bot("migrate", env=env, cwd=tmp_path)
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    for _, name, _ in migrations("sqlite"):
        assert f"  {name}\n" in first.stdout
    assert "up to date" not in first.stdout and "job queue" not in first.stdout
    assert ".sql" not in second.stdout


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"STARTER_CREDITS": "-1"}, "STARTER_CREDITS"),
        ({"ADMIN_IDS": "telegram:abc"}, "ADMIN_IDS"),
        ({"ADMIN_IDS": "slack:12"}, "ADMIN_IDS"),
        ({"ADMIN_IDS": "telegram:0123"}, "ADMIN_IDS"),
        ({"ADMIN_IDS": "telegram:١٢٣"}, "ADMIN_IDS"),
        ({"GENERATOR": "replicate"}, "GENERATOR"),
        ({"TELEGRAM_WEBHOOK": "true"}, "TELEGRAM_WEBHOOK"),
        ({"MAX_CONCURRENT_JOBS": "zero"}, "MAX_CONCURRENT_JOBS"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
    ],
)
def test_invalid_setting_stops_with_one_line_naming_it(tmp_path, env, variable):
    result = run_bot("migrate", env=env, cwd=tmp_path)
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1
    assert variable in result.stderr


def test_settings_from_dotenv_file(tmp_path):
    (tmp_path / ".env").write_text("STARTER_CREDITS=-5\n")
    result = run_bot("migrate", cwd=tmp_path)
    assert result.returncode != 0 and "STARTER_CREDITS" in result.stderr


def test_run_without_any_token_says_what_to_set(tmp_path):
    result = run_bot("run", env={"DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}", "WEB_STUDIO": "false"},
                     cwd=tmp_path)
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1
    assert "TELEGRAM_BOT_TOKEN" in result.stderr and "DISCORD_BOT_TOKEN" in result.stderr


def test_run_without_any_token_serves_the_web_studio_at_the_printed_url(tmp_path):
    bot = subprocess.Popen(
        [sys.executable, "-m", "bot"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env={**os.environ, "PYTHONPATH": str(ROOT), "HTTP_PORT": "0"},
    )
    try:
        assert bot.stdout is not None
        seen = []
        for line in bot.stdout:  # the bot prints its URL once the page is served
            seen.append(line)
            found = re.search(r"LOKIZ web studio: (http://127\.0\.0\.1:\d+/)", line)
            if found:
                break
        assert found, "".join(seen)
        with urllib.request.urlopen(found.group(1), timeout=10) as page:
            html, cookie = page.read().decode(), page.headers["Set-Cookie"]
        assert "<main id=\"feed\"" in html and "LOKIZ" in html
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert (tmp_path / "data" / "lokiz.db").exists()  # SQLite in the default place
    finally:
        bot.terminate()
        bot.wait(timeout=30)


def test_admin_grants_credits_to_a_web_user_without_paid_starter_credits(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'g.db'}", "REPLICATE_API_TOKEN": "r8_test"}
    result = run_bot("credits", "grant", "web:1234567890123456", "40", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "granted 40 to web:1234567890123456; balance 40" in result.stdout


def test_secrets_are_not_shown_in_setting_errors(tmp_path):
    token = "123456:" + "A" * 35
    result = run_bot("migrate", env={"TELEGRAM_BOT_TOKEN": token, "STARTER_CREDITS": "x"}, cwd=tmp_path)
    assert token not in result.stderr + result.stdout


def test_every_setting_is_documented():
    example = (ROOT / ".env.example").read_text()
    readme = (ROOT / "README.md").read_text()
    for name in Settings.model_fields:
        assert re.search(rf"^{name.upper()}=", example, re.M), f"{name.upper()} missing in .env.example"
        assert name.upper() in readme, f"{name.upper()} missing in README"


def test_the_bot_runs_on_uvloop_where_it_is_installed():
    # An update is mostly socket round trips (webhook, Redis, PostgreSQL, Bot API): uvloop
    # makes each cheaper in CPU than the standard loop does.
    from bot.cli import new_event_loop

    loop = new_event_loop()
    try:
        assert type(loop).__module__.split(".")[0] == "uvloop"
    finally:
        loop.close()
