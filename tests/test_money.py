"""Money is exact (issue 9, "Money"): admin grants, paid presses, priced options, admin input.

The core as both adapters drive it, on a real SQLite file and the scripted backend.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.app import build_services
from core.catalogue import TEMPLATE
from core.desk import Alert, Edit, Send
from core.errors import AlreadyStarted, ConfigError, KeyReused
from core.ratelimit import UpdateRateLimiter
from core.screens import Screen
from core.settings import load_settings
from tests.fakes.backend import ScriptedBackend
from tests.fakes.notifier import RecordingNotifier
from tests.test_studio import button, ctx, drive, only, open_frame


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    from tests.media_factory import make_av_video

    return make_av_video(tmp_path_factory.mktemp("money") / "six.mp4", seconds=6.0)


@pytest.fixture
async def services(tmp_path: Path, av_video: Path):
    settings = load_settings(
        None, database_url=f"sqlite:///{tmp_path / 'money.db'}", media_dir=tmp_path / "media",
        admin_ids="telegram:900", starter_credits=50,
    )
    built = await build_services(settings)
    built.engine.backend = ScriptedBackend(output_file=av_video)
    built.engine.notifiers["telegram"] = RecordingNotifier()
    built.engine._pacer._interval = 0.01
    built.desk.rate_limiter = UpdateRateLimiter(burst=1000)  # these tests press fast on purpose
    await built.engine.start()
    yield built
    await built.close()


async def _balance_is_the_ledger(services, platform_user_id: str) -> int:
    user = await services.ledger.users.find("telegram", platform_user_id)
    balance = await services.ledger.balance(user.id)
    assert balance == await services.ledger.ledger_sum(user.id) >= 0
    return balance


# --- 1. admin grants and every key built from platform ids ----------------------------
async def test_grants_in_two_chats_with_the_same_message_number_both_land(services):
    await drive(services).user(ctx(user="42"))
    private = only(await drive(services).admin(ctx(user="900", chat="900", message="77"),
                                               "grant", ["42", "500"]), Send)
    assert "Granted 500" in private.screen.text and "Balance: 550" in private.screen.text
    # Telegram numbers messages per chat: message 77 in a group is another command.
    group = only(await drive(services).admin(ctx(user="900", chat="-100", kind="group", message="77"),
                                             "grant", ["42", "200"]), Send)
    assert "Granted 200" in group.screen.text and "Balance: 750" in group.screen.text
    assert await _balance_is_the_ledger(services, "42") == 750


async def test_the_same_command_handled_twice_grants_once(services):
    await drive(services).user(ctx(user="42"))
    admin = ctx(user="900", chat="900", message="77")
    first = only(await drive(services).admin(admin, "grant", ["42", "100"]), Send)
    again = only(await drive(services).admin(admin, "grant", ["42", "100"]), Send)
    assert "Balance: 150" in first.screen.text and "Balance: 150" in again.screen.text
    assert await _balance_is_the_ledger(services, "42") == 150


async def test_a_key_reused_for_another_user_or_amount_is_an_error_not_a_no_op(services):
    ledger = services.ledger
    ann, _ = await ledger.ensure_user("telegram", "1")
    bob, _ = await ledger.ensure_user("telegram", "2")
    first = await ledger.grant(ann.id, 10, actor="test", key="grant:telegram:5:77")
    assert (await ledger.grant(ann.id, 10, actor="test", key="grant:telegram:5:77")).id == first.id
    with pytest.raises(KeyReused):
        await ledger.grant(bob.id, 10, actor="test", key="grant:telegram:5:77")
    with pytest.raises(KeyReused):
        await ledger.grant(ann.id, 20, actor="test", key="grant:telegram:5:77")
    with pytest.raises(KeyReused):
        await ledger.revoke(ann.id, 10, actor="test", key="grant:telegram:5:77")
    assert await ledger.balance(ann.id) == 60 and await ledger.balance(bob.id) == 50
    # An admin command that meets such a key is told so, in words.
    admin = ctx(user="900", chat="5", message="77")
    said = only(await drive(services).admin(admin, "revoke", ["2", "5"]), Send)
    assert "Revoked" in said.screen.text
    clash = only(await drive(services).admin(admin, "revoke", ["2", "6"]), Send)
    assert "already used" in clash.screen.text
    assert await ledger.balance(bob.id) == 45


async def test_a_grant_to_someone_not_seen_yet_shows_their_real_balance(services):
    granted = only(await drive(services).admin(ctx(user="900", message="80"), "grant", ["77", "100"]),
                   Send)
    assert "Balance: 150" in granted.screen.text  # their 50 starter credits are settled first
    revoked = only(await drive(services).admin(ctx(user="900", message="81"), "revoke",
                                               ["telegram:78", "30"]), Send)
    assert "Balance: 20" in revoked.screen.text
    hello = only(await drive(services).start(ctx(user="77")), Send)
    assert "150" in hello.screen.text  # greeted, but the starter credits come only once
    assert await _balance_is_the_ledger(services, "77") == 150
    assert await _balance_is_the_ledger(services, "78") == 20


async def test_presses_in_two_chats_with_the_same_message_number_are_two_jobs(services, tmp_path, video):
    results = []
    for chat in ("1", "2"):
        sent, _ = await open_frame(services, tmp_path, video, who=ctx(chat=chat))
        await drive(services).bind_message(sent.session_id, "500")
        results.append(await _delivered_result(services, sent, ctx(chat=chat, message="500")))
    user = await services.ledger.users.find("telegram", "1")
    await services.ledger.grant(user.id, 100, actor="test")
    for chat, result in zip(("1", "2"), results, strict=True):
        reply = await drive(services).press(ctx(chat=chat, message="800"), button(result, "Again"))
        assert "job" in reply.alerts[0].text and "Already" not in reply.alerts[0].text
    assert len(await services.jobs.for_user(user.id)) == 4
    assert await _balance_is_the_ledger(services, "1") == 50 + 100 - 4 * 20


# --- 2. a double press charges once --------------------------------------------------
async def _delivered_result(services, sent: Send, who) -> Screen:
    """Walk a template to Confirm, press it, wait for the result; the result's screen."""
    notifier = services.engine.notifiers["telegram"]
    before = len(notifier.delivered)
    edit = only(await drive(services).press(who, button(sent.screen, "Template")), Edit)
    edit = only(await drive(services).press(who, button(edit.screen, "AI hug")), Edit)
    edit = only(await drive(services).press(who, button(edit.screen, "Next")), Edit)
    await drive(services).press(who, button(edit.screen, "Confirm"))
    for _ in range(500):
        if len(notifier.delivered) > before:
            break
        await asyncio.sleep(0.02)
    return notifier.delivered[before][2]


async def _jobs_settle(services, user_id: int) -> None:
    for _ in range(500):
        jobs = await services.jobs.for_user(user_id)
        if all(job.status == "delivered" for job in jobs):
            return
        await asyncio.sleep(0.02)


async def test_again_pressed_twice_on_one_screen_charges_once_and_a_press_on_the_new_screen_is_a_new_job(
    services, tmp_path, video,
):
    sent, _ = await open_frame(services, tmp_path, video)
    result = await _delivered_result(services, sent, ctx(message="500"))
    user = await services.ledger.users.find("telegram", "1")
    await services.ledger.grant(user.id, 100, actor="test")  # 150 - 20 = 130
    await _jobs_settle(services, user.id)
    presser = ctx(message="800")
    again = button(result, "Again")
    first, second = await asyncio.gather(drive(services).press(presser, again),
                                         drive(services).press(presser, again))
    alerts = [alert.text for alert in first.alerts + second.alerts]
    assert len(alerts) == 2 and sum("started" in text and "Already" not in text for text in alerts) == 1
    assert len(await services.jobs.for_user(user.id)) == 2
    assert await _balance_is_the_ledger(services, "1") == 110
    # The first press changed the screen; a deliberate press there is a new job, charged once.
    [changed] = [out for out in first.outs + second.outs if isinstance(out, Edit)]
    assert changed.message_id == "800" and "1 started" in button_labels(changed.screen)
    third = await drive(services).press(presser, button(changed.screen, "Again"))
    assert "started" in third.alerts[0].text
    assert len(await services.jobs.for_user(user.id)) == 3
    assert await _balance_is_the_ledger(services, "1") == 90
    # The old screen's button, pressed late, is still the same double press.
    late = await drive(services).press(presser, again)
    assert [type(out) for out in late.outs] == [Alert] and "Already" in late.alerts[0].text
    assert len(await services.jobs.for_user(user.id)) == 3
    assert await _balance_is_the_ledger(services, "1") == 90


def button_labels(screen: Screen) -> str:
    return " ".join(b.label for b in screen.all_buttons())


async def test_a_charge_key_already_used_by_another_job_starts_nothing(services):
    ledger = services.ledger
    ann, _ = await ledger.ensure_user("telegram", "1")
    await ledger.charge_now(ann.id, 20, job_id="j1")  # the default key, charge:j1
    async with services.db.transaction() as tx:
        await ledger.charge(tx, ann.id, 20, job_id="j2", key="press:telegram:1:800:again:0")
    with pytest.raises(AlreadyStarted):
        async with services.db.transaction() as tx:
            await ledger.charge(tx, ann.id, 20, job_id="j3", key="press:telegram:1:800:again:0")
    assert await ledger.refund_now("j2") is not None  # refunds find a press-keyed charge
    assert await ledger.refund_now("j3") is None
    assert await ledger.balance(ann.id) == 30 == await ledger.ledger_sum(ann.id)
    assert await ledger.presses("press:telegram:1:800:again:") == 1


# --- 3. only offered options, each priced ---------------------------------------------
async def test_crafted_option_data_cannot_buy_what_the_screen_never_offered(services, tmp_path, video):
    sent, session_id = await open_frame(services, tmp_path, video)
    who = ctx(message="500")
    options = only(await drive(services).press(who, button(sent.screen, "Template")), Edit)
    options = only(await drive(services).press(who, button(options.screen, "AI hug")), Edit)
    for crafted in (f"lz:st.opt:{session_id}:generate_audio:1", f"lz:st.opt:{session_id}:seed:0",
                    f"lz:st.opt:{session_id}:resolution:7"):
        refused = await drive(services).press(who, crafted)
        assert [type(out) for out in refused.outs] == [Alert], crafted
    confirm = only(await drive(services).press(who, button(options.screen, "Next")), Edit)
    assert "20 credits" in confirm.screen.text
    # The confirm screen offers no options: 1080p cannot slip in after the price was shown.
    late = await drive(services).press(who, f"lz:st.opt:{session_id}:resolution:1")
    assert [type(out) for out in late.outs] == [Alert]
    await drive(services).press(who, button(confirm.screen, "Confirm"))
    user = await services.ledger.users.find("telegram", "1")
    [job] = await services.jobs.for_user(user.id)
    assert job.price == 20 and "resolution" not in job.request.options
    assert "generate_audio" not in job.request.options
    assert await _balance_is_the_ledger(services, "1") == 30


async def test_1080p_is_offered_with_its_surcharge_and_charged_in_full(services, tmp_path, video):
    sent, _ = await open_frame(services, tmp_path, video)
    who = ctx(message="500")
    options = only(await drive(services).press(who, button(sent.screen, "Template")), Edit)
    options = only(await drive(services).press(who, button(options.screen, "AI hug")), Edit)
    assert "1080p +10" in button_labels(options.screen)
    options = only(await drive(services).press(who, button(options.screen, "1080p")), Edit)
    confirm = only(await drive(services).press(who, button(options.screen, "Next")), Edit)
    assert "30 credits" in confirm.screen.text and "50 → 20" in confirm.screen.text
    assert "1080p" in confirm.screen.text
    await drive(services).press(who, button(confirm.screen, "Confirm"))
    user = await services.ledger.users.find("telegram", "1")
    [job] = await services.jobs.for_user(user.id)
    assert job.price == 30 and job.request.options["resolution"] == "1080p"
    assert await _balance_is_the_ledger(services, "1") == 20
    assert services.engine.models[TEMPLATE].request_for(job.id, job.request).inputs["resolution"] == "1080p"


def test_the_1080p_surcharge_is_an_operator_setting(tmp_path):
    from core.catalogue import build_models

    settings = load_settings(None, database_url=f"sqlite:///{tmp_path / 'x.db'}",
                             price_template=25, price_template_1080p=15)
    spec = build_models(settings)[TEMPLATE]
    assert spec.price_for({}) == 25 and spec.price_for({"resolution": "1080p"}) == 40


# --- 4. admin amounts and ids are ASCII digits ----------------------------------------
@pytest.mark.parametrize("amount", ["²", "٥", "５", "1²", "+", "", "99999999999999999999"])
async def test_admin_amounts_take_ascii_digits_only(services, amount):
    await drive(services).user(ctx(user="42"))
    said = only(await drive(services).admin(ctx(user="900", message="90"), "grant", ["42", amount]), Send)
    assert "whole number" in said.screen.text or "too large" in said.screen.text, said.screen.text
    assert await _balance_is_the_ledger(services, "42") == 50


@pytest.mark.parametrize("who", ["٤٢", "telegram:٤٢", "telegram:042", "slack:42", "telegram:²"])
async def test_admin_ids_take_ascii_digits_only(services, who):
    await drive(services).user(ctx(user="42"))
    said = only(await drive(services).admin(ctx(user="900", message="91"), "grant", [who, "5"]), Send)
    assert "don't know that user" in said.screen.text, said.screen.text
    assert await services.ledger.users.count() == 2  # the admin and 42; nobody new was made
    assert await _balance_is_the_ledger(services, "42") == 50


@pytest.mark.parametrize("raw", ["telegram:0123", "telegram:١٢٣", "discord:²"])
def test_admin_ids_setting_refuses_what_is_not_a_plain_id(tmp_path, raw):
    with pytest.raises(ConfigError, match="ADMIN_IDS"):
        load_settings(None, database_url=f"sqlite:///{tmp_path / 'x.db'}", admin_ids=raw)


async def test_concurrent_presses_and_grants_keep_the_ledger_exact(services):
    from core.errors import InsufficientCredits

    ledger = services.ledger
    ann, _ = await ledger.ensure_user("telegram", "1")  # 50 starter credits

    async def press(i: int) -> str:
        try:
            async with services.db.transaction() as tx:
                await ledger.charge(tx, ann.id, 20, job_id=f"j{i}",
                                    key=f"press:telegram:1:800:again:{i % 3}")
        except AlreadyStarted:
            return "double"
        except InsufficientCredits:
            return "short"
        return "charged"

    async def grant(i: int) -> str:
        await ledger.grant(ann.id, 5, actor="test", key=f"grant:telegram:1:{i % 4}")
        return "granted"

    results = await asyncio.gather(*(press(i) for i in range(30)), *(grant(i) for i in range(20)))
    charged = results.count("charged")
    assert charged in (2, 3) and results.count("double") + results.count("short") == 30 - charged
    balance = await ledger.balance(ann.id)
    assert balance == await ledger.ledger_sum(ann.id) == 50 + 4 * 5 - 20 * charged >= 0
