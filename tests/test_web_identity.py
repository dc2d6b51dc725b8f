"""Who a browser is, and what a new web user gets: cookies, the kept key, starter credits."""

from __future__ import annotations

import stat
import time

from aiohttp.test_utils import make_mocked_request
from aiohttp.web import Response

from adapters.web.identity import COOKIE, Keys, load_secret
from core.credits import CreditLedger
from core.settings import load_settings
from core.users import UserDirectory


def cookie_from(keys: Keys, user_id: str) -> str:
    response = Response()
    keys.issue(response, user_id, secure=False)
    return response.cookies[COOKIE].value


def request_with(cookie: str):
    return make_mocked_request("GET", "/", headers={"Cookie": f"{COOKIE}={cookie}"})


def test_a_browser_keeps_its_id_but_a_forged_or_old_cookie_is_nobody():
    keys = Keys(b"k" * 32, access_code=None, lifetime=3600)
    cookie = cookie_from(keys, "1234567890123456")
    assert keys.visitor(request_with(cookie)) == "1234567890123456"
    user_id, issued, signature = cookie.split(".")
    assert keys.visitor(request_with(f"1234567890123457.{issued}.{signature}")) is None
    assert keys.visitor(request_with(f"{user_id}.{issued}.{'0' * len(signature)}")) is None
    assert Keys(b"other" * 8, access_code=None, lifetime=3600).visitor(request_with(cookie)) is None
    old = str(int(time.time()) - 7200)
    expired = f"{user_id}.{old}.{keys._sign(f'{user_id}.{old}')}"
    assert keys.visitor(request_with(expired)) is None  # sessions end with the media TTL


def test_changing_the_access_code_signs_everyone_out():
    keys = Keys(b"k" * 32, access_code="one", lifetime=3600)
    cookie = cookie_from(keys, "1234567890123456")
    assert Keys(b"k" * 32, access_code="two", lifetime=3600).visitor(request_with(cookie)) is None
    assert keys.code_ok("one") and not keys.code_ok("on")


def test_the_signing_key_is_made_once_and_kept_in_the_data_folder(tmp_path):
    settings = load_settings(None, database_url=f"sqlite:///{tmp_path / 'data' / 'lokiz.db'}")
    first = load_secret(settings)
    assert load_secret(settings) == first and len(first) == 64
    kept = tmp_path / "data" / "web_secret.key"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert load_secret(load_settings(None, web_secret="mine")) == b"mine"


async def test_web_users_get_web_starter_credits_where_credits_cost_real_money(db):
    paid = load_settings(None, replicate_api_token="r8_x", starter_credits=50)
    assert paid.web_starter == 0
    assert load_settings(None, replicate_api_token="r8_x", web_starter_credits=5).web_starter == 5
    assert load_settings(None, starter_credits=50).web_starter == 50  # local: free to make
    ledger = CreditLedger(db, UserDirectory(db), starter_credits=50,
                          platform_starter={"web": paid.web_starter})
    web_user, _ = await ledger.ensure_user("web", "1234567890123456")
    chat_user, _ = await ledger.ensure_user("telegram", "42")
    assert (web_user.balance, chat_user.balance) == (0, 50)


def test_the_web_studio_is_on_without_tokens_and_off_with_them_unless_asked():
    token = "123456:" + "A" * 35
    assert load_settings(None).web_enabled
    assert not load_settings(None, telegram_bot_token=token).web_enabled
    assert load_settings(None, telegram_bot_token=token, web_studio=True).web_enabled
    assert not load_settings(None, web_studio=False).web_enabled
