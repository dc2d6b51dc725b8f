"""The fake Discord speaks the wire protocol the real discord.py client expects.

A real ``commands.Bot`` (default intents, no message-content intent) logs in,
connects to the fake gateway, syncs its commands and answers users the way the
LOKIZ adapter will: attachments downloaded, files uploaded, deferred work
followed up, buttons that survive restarts (``DynamicItem``), ephemeral
answers, and sends that survive a 429.
"""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import AsyncIterator

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands

from tests.fakes.discord import (
    CALLBACK_CHANNEL_MESSAGE,
    CALLBACK_DEFERRED_CHANNEL_MESSAGE,
    CALLBACK_MODAL,
    CALLBACK_UPDATE_MESSAGE,
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    INTENT_MESSAGE_CONTENT,
    PERMISSION_ADMINISTRATOR,
    PERMISSION_MANAGE_MESSAGES,
    DiscordError,
    FakeDiscord,
)

GUILD_ID = 700_000_000_000_000_001
CHANNEL_ID = 700_000_000_000_000_010
QUIET_CHANNEL_ID = 700_000_000_000_000_011
MODS = 700_000_000_000_000_020
OWNERS = 700_000_000_000_000_021
ALICE = 700_000_000_000_000_100
BOB = 700_000_000_000_000_200


# --------------------------------------------------------------------------- the bot under test


class RemixButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"remix:(?P<session>[a-z0-9]+):(?P<count>\d+)",
):
    """A button whose state lives in its custom_id, so it works after a restart."""

    def __init__(self, session: str, count: int) -> None:
        super().__init__(
            discord.ui.Button(
                label=f"Remix {count}",
                style=discord.ButtonStyle.primary,
                custom_id=f"remix:{session}:{count}",
            )
        )
        self.session = session
        self.count = count

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction,
        item: discord.ui.Item[discord.ui.View],
        match: re.Match[str],
    ) -> RemixButton:
        return cls(match["session"], int(match["count"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        view = discord.ui.View(timeout=None)
        view.add_item(RemixButton(self.session, self.count + 1))
        await interaction.response.edit_message(
            content=f"remixed {self.count + 1} times", view=view
        )


class MoodView(discord.ui.View):
    @discord.ui.select(
        custom_id="mood",
        options=[
            discord.SelectOption(label="Calm", value="calm"),
            discord.SelectOption(label="Epic", value="epic"),
        ],
    )
    async def pick(
        self, interaction: discord.Interaction, select: discord.ui.Select[MoodView]
    ) -> None:
        await interaction.response.edit_message(content=f"mood: {select.values[0]}", view=None)


class PromptModal(discord.ui.Modal, title="Music prompt"):
    prompt: discord.ui.TextInput[PromptModal] = discord.ui.TextInput(
        label="Prompt", custom_id="prompt", max_length=200
    )

    def __init__(self) -> None:
        super().__init__(custom_id="music-prompt")

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"composing: {self.prompt.value}")


@app_commands.command(description="Capture a frame from a video")
async def frame(interaction: discord.Interaction, video: discord.Attachment, at: str = "0") -> None:
    data = await video.read()
    await interaction.response.send_message(
        f"{video.filename}: {len(data)} bytes at {at}",
        file=discord.File(io.BytesIO(data[::-1]), filename="frame.jpg"),
    )


@app_commands.command(description="Render a clip (slow work, deferred)")
async def render(interaction: discord.Interaction) -> None:
    await interaction.response.defer(thinking=True)
    await interaction.followup.send(
        "render finished", file=discord.File(io.BytesIO(b"mp4-bytes"), "clip.mp4")
    )


@app_commands.command(description="Open a studio session")
async def studio(interaction: discord.Interaction) -> None:
    view = discord.ui.View(timeout=None)
    view.add_item(RemixButton("s1", 0))
    await interaction.response.send_message("studio s1", view=view)


@app_commands.command(description="Show your balance")
async def balance(interaction: discord.Interaction) -> None:
    await interaction.response.send_message("50 credits", ephemeral=True)


@app_commands.command(description="Pick a music mood")
async def mood(interaction: discord.Interaction) -> None:
    await interaction.response.send_message("pick a mood", view=MoodView())


@app_commands.command(description="Describe the music")
async def music(interaction: discord.Interaction) -> None:
    await interaction.response.send_modal(PromptModal())


class UploadModal(discord.ui.Modal, title="Your image"):
    """discord.py's own modal with a file-upload field: the fake must speak its protocol."""

    photo: discord.ui.Label[UploadModal] = discord.ui.Label(
        text="A photo", component=discord.ui.FileUpload(custom_id="photo", max_values=1)
    )

    def __init__(self) -> None:
        super().__init__(custom_id="upload-form")

    async def on_submit(self, interaction: discord.Interaction) -> None:
        assert isinstance(self.photo.component, discord.ui.FileUpload)
        [file] = self.photo.component.values
        data = await file.read()
        await interaction.response.send_message(f"got {file.filename}: {len(data)} bytes")


@app_commands.command(description="Upload a photo through a form")
async def upload(interaction: discord.Interaction) -> None:
    await interaction.response.send_modal(UploadModal())


@app_commands.command(description="Answers too late")
async def slow(interaction: discord.Interaction) -> None:
    await asyncio.sleep(0.4)
    await interaction.response.send_message("too late")


@app_commands.command(description="Can you moderate here?")
async def moderate(interaction: discord.Interaction) -> None:
    allowed = interaction.permissions.manage_messages
    await interaction.response.send_message(f"manage messages: {allowed}", ephemeral=True)


class PageButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=r"page:(?P<page>\d+)"
):
    """A page of clips: turning it replaces the message's attachments in place."""

    def __init__(self, page: int) -> None:
        super().__init__(discord.ui.Button(label=f"page {page}", custom_id=f"page:{page}"))
        self.page = page

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction,
        item: discord.ui.Item[discord.ui.View],
        match: re.Match[str],
    ) -> PageButton:
        return cls(int(match["page"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        await interaction.edit_original_response(
            content=f"page {self.page}", attachments=clip_files(self.page, 2),
            view=page_view(self.page + 1),
        )


def clip_files(page: int, count: int, size: int = 16) -> list[discord.File]:
    return [discord.File(io.BytesIO(bytes([page]) * size), f"{page}-{n}.mp4") for n in range(count)]


def page_view(page: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(PageButton(page))
    return view


@app_commands.command(description="A page of clips as attachments")
async def clips(interaction: discord.Interaction, count: app_commands.Range[int, 1, 20],
                size: int = 16) -> None:
    await interaction.response.defer(thinking=True)
    try:
        await interaction.followup.send("page 0", files=clip_files(0, count, size), view=page_view(1))
    except discord.HTTPException as exc:
        await interaction.followup.send(f"refused: {exc.status} {exc.code}")


@app_commands.context_menu(name="Remix this clip")
async def remix_clip(interaction: discord.Interaction, message: discord.Message) -> None:
    names = ", ".join(a.filename for a in message.attachments)
    await interaction.response.send_message(f"template clip: {names}", ephemeral=True)


class StudioBot(commands.Bot):
    def __init__(self) -> None:
        super().__init__(
            command_prefix="!",
            intents=discord.Intents.default(),
            guild_ready_timeout=0.05,
            help_command=None,
        )
        self.seen_messages: list[discord.Message] = []
        self.command_errors: list[app_commands.AppCommandError] = []

    async def setup_hook(self) -> None:
        self.add_dynamic_items(RemixButton, PageButton)
        for command in (frame, render, studio, balance, mood, music, upload, slow, remix_clip, moderate,
                        clips):
            self.tree.add_command(command)

        @self.tree.error
        async def record_error(
            interaction: discord.Interaction, error: app_commands.AppCommandError
        ) -> None:
            self.command_errors.append(error)

    async def on_message(self, message: discord.Message) -> None:
        self.seen_messages.append(message)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        server.guild(GUILD_ID, "LOKIZ Lab")
        server.channel(GUILD_ID, CHANNEL_ID, "remix")
        server.channel(GUILD_ID, QUIET_CHANNEL_ID, "announcements")
        server.role(GUILD_ID, MODS, "mods", PERMISSION_MANAGE_MESSAGES)
        server.role(GUILD_ID, OWNERS, "owners", PERMISSION_ADMINISTRATOR)
        server.member(ALICE, "alice")
        server.member(BOB, "bob", locale="ko", roles=[MODS])
        with server.point_discord_py():
            yield server


@pytest.fixture
async def bot(fake: FakeDiscord) -> AsyncIterator[StudioBot]:
    client = StudioBot()
    await client.login(fake.token)
    connection = asyncio.create_task(client.connect())
    await asyncio.wait_for(client.wait_until_ready(), timeout=5)
    await client.tree.sync()
    yield client
    await client.close()
    await asyncio.wait_for(connection, timeout=5)


# --------------------------------------------------------------------------- tests


async def test_bot_logs_in_and_sees_its_guild(fake: FakeDiscord, bot: StudioBot) -> None:
    assert bot.user is not None and bot.user.id == fake.bot_id
    guild = bot.get_guild(GUILD_ID)
    assert guild is not None and guild.name == "LOKIZ Lab"
    assert isinstance(bot.get_channel(CHANNEL_ID), discord.TextChannel)
    assert [c.path for c in fake.calls[:2]] == ["/users/@me", "/oauth2/applications/@me"]
    assert fake.gateway_connects[0]["compress"] in ("zlib-stream", "zstd-stream")
    assert fake.gateway_connects[0]["encoding"] == "json"
    assert not fake.identify_payloads[0]["intents"] & INTENT_MESSAGE_CONTENT
    await fake.wait_until(lambda: fake.heartbeats >= 1)


async def test_tree_sync_registers_slash_and_context_menu_commands(
    fake: FakeDiscord, bot: StudioBot
) -> None:
    registered = {c["name"]: c for c in fake.commands()}
    assert {"frame", "render", "studio", "balance", "Remix this clip"} <= set(registered)
    assert registered["Remix this clip"]["type"] == 3
    video = next(o for o in registered["frame"]["options"] if o["name"] == "video")
    assert video["type"] == 11 and video["required"] is True
    synced = await bot.tree.fetch_commands()
    assert {c.name for c in synced} == set(registered)


async def test_slash_command_downloads_attachment_and_replies_with_a_file(
    fake: FakeDiscord, bot: StudioBot
) -> None:
    clip = fake.add_attachment(b"video-bytes", "clip.mp4", "video/mp4")
    interaction = await fake.slash(
        ALICE, CHANNEL_ID, "frame", {"at": "1.5"}, attachments={"video": clip}
    )
    reply = await fake.wait_for_response(interaction)
    assert reply.callback_type == CALLBACK_CHANNEL_MESSAGE
    assert reply.content == "clip.mp4: 11 bytes at 1.5"
    assert reply.filenames == ["frame.jpg"]
    message = fake.message(reply.message_id)
    assert message["attachments"][0]["content_type"] == "image/jpeg"
    assert fake.attachment_bytes(message["attachments"][0]) == b"video-bytes"[::-1]
    assert any(path.endswith("/clip.mp4") for path in fake.downloads)


async def test_deferred_command_followup_replaces_the_thinking_message(
    fake: FakeDiscord, bot: StudioBot
) -> None:
    interaction = await fake.slash(ALICE, CHANNEL_ID, "render")
    await fake.wait_until(lambda: len(fake.interaction_responses(interaction)) == 2)
    deferred, followup = fake.interaction_responses(interaction)
    assert deferred.callback_type == CALLBACK_DEFERRED_CHANNEL_MESSAGE
    assert followup.kind == "followup" and followup.message_id == deferred.message_id
    message = fake.message(followup.message_id)
    assert message["content"] == "render finished"
    assert not message["flags"] & FLAG_LOADING
    assert [a["filename"] for a in message["attachments"]] == ["clip.mp4"]
    assert [m["content"] for m in fake.channel_messages(CHANNEL_ID)] == ["render finished"]


async def test_dynamic_button_press_edits_the_message_in_place(
    fake: FakeDiscord, bot: StudioBot
) -> None:
    opened = await fake.slash(ALICE, CHANNEL_ID, "studio")
    studio_message = (await fake.wait_for_response(opened)).message_id
    for count in (0, 1):
        press = await fake.press(BOB, studio_message, f"Remix {count}")
        answer = await fake.wait_for_response(press)
        assert answer.callback_type == CALLBACK_UPDATE_MESSAGE
    message = fake.message(studio_message)
    assert message["content"] == "remixed 2 times"
    button = message["components"][0]["components"][0]
    assert (button["label"], button["custom_id"]) == ("Remix 2", "remix:s1:2")
    assert len(fake.channel_messages(CHANNEL_ID)) == 1


async def test_select_menu_choice_reaches_the_view(fake: FakeDiscord, bot: StudioBot) -> None:
    opened = await fake.slash(ALICE, CHANNEL_ID, "mood")
    menu_message = (await fake.wait_for_response(opened)).message_id
    picked = await fake.select(ALICE, menu_message, "mood", ["epic"])
    await fake.wait_for_response(picked)
    message = fake.message(menu_message)
    assert message["content"] == "mood: epic" and message["components"] == []


async def test_modal_submit_reaches_the_modal(fake: FakeDiscord, bot: StudioBot) -> None:
    opened = await fake.slash(BOB, CHANNEL_ID, "music")
    assert (await fake.wait_for_response(opened)).callback_type == CALLBACK_MODAL
    submitted = await fake.submit_modal(BOB, "music-prompt", {"prompt": "lofi rain"})
    assert (await fake.wait_for_response(submitted)).content == "composing: lofi rain"
    assert submitted.payload["locale"] == "ko"


async def test_modal_file_upload_carries_the_attachment_in_resolved_data(
    fake: FakeDiscord, bot: StudioBot
) -> None:
    opened = await fake.slash(ALICE, CHANNEL_ID, "upload")
    form = (await fake.wait_for_response(opened)).payload
    [label] = form["components"]
    assert label["type"] == 18 and label["component"]["type"] == 19  # a file upload sits in a label
    with pytest.raises(ValueError, match="required"):
        await fake.submit_modal(ALICE, "upload-form", {"photo": []})
    photo = fake.add_attachment(b"\xff\xd8 jpeg bytes", "me.jpg", "image/jpeg")
    submitted = await fake.submit_modal(ALICE, "upload-form", {"photo": photo})
    data = submitted.payload["data"]
    assert data["components"][0]["component"]["values"] == [str(photo["id"])]
    assert data["resolved"]["attachments"][str(photo["id"])]["filename"] == "me.jpg"
    assert (await fake.wait_for_response(submitted)).content == "got me.jpg: 13 bytes"


def test_a_file_upload_outside_a_label_is_refused_like_discord(fake: FakeDiscord) -> None:
    bare = {"custom_id": "f", "title": "Upload", "components": [{"type": 19, "custom_id": "file"}]}
    with pytest.raises(DiscordError) as refused:
        fake._validate_modal(bare)
    assert refused.value.status == 400 and "label" in str(refused.value.errors)
    too_many = {"custom_id": "f", "title": "Upload", "components": [
        {"type": 18, "label": "Files", "component": {"type": 19, "custom_id": "file", "max_values": 11}}]}
    with pytest.raises(DiscordError):
        fake._validate_modal(too_many)


async def test_member_permissions_come_from_roles_and_channel_overwrites(
    fake: FakeDiscord, bot: StudioBot
) -> None:
    async def can_moderate(user: int, channel: int = CHANNEL_ID) -> bool:
        asked = await fake.slash(user, channel, "moderate")
        answer = (await fake.wait_for_response(asked)).content or ""
        return answer.endswith("True")

    assert not await can_moderate(ALICE)
    assert await can_moderate(BOB)  # the mods role grants Manage Messages
    fake.overwrite(QUIET_CHANNEL_ID, MODS, deny=PERMISSION_MANAGE_MESSAGES)
    assert not await can_moderate(BOB, QUIET_CHANNEL_ID)  # ...except where the channel denies it
    fake.overwrite(QUIET_CHANNEL_ID, ALICE, allow=PERMISSION_MANAGE_MESSAGES, member=True)
    assert await can_moderate(ALICE, QUIET_CHANNEL_ID)
    fake.give_role(GUILD_ID, BOB, OWNERS)  # Administrator overrides every overwrite
    assert await can_moderate(BOB, QUIET_CHANNEL_ID)
    asked = await fake.slash(ALICE, CHANNEL_ID, "moderate")
    assert asked.payload["member"]["permissions"] == str(fake.permissions_in(CHANNEL_ID, ALICE))


async def test_a_page_of_clips_is_one_message_and_turning_it_replaces_its_attachments(
    fake: FakeDiscord, bot: StudioBot
) -> None:
    asked = await fake.slash(ALICE, CHANNEL_ID, "clips", {"count": 5})
    page = await fake.wait_for_message(CHANNEL_ID, lambda m: m["content"] == "page 0")
    assert [a["filename"] for a in page["attachments"]] == [f"0-{n}.mp4" for n in range(5)]
    first = page["attachments"][0]
    await fake.wait_for_response(await fake.press(BOB, page["id"], "page 1"))
    turned = await fake.wait_until(lambda: (m := fake.message(page["id"]))["content"] == "page 1" and m)
    assert [a["filename"] for a in turned["attachments"]] == ["1-0.mp4", "1-1.mp4"]
    assert fake.attachment_bytes(turned["attachments"][0]) == b"\x01" * 16
    assert first["id"] not in {a["id"] for a in turned["attachments"]}
    assert [r.kind for r in fake.interaction_responses(asked)] == ["callback", "followup"]


async def test_a_message_holds_ten_attachments_whose_sizes_count_together(
    fake: FakeDiscord, bot: StudioBot
) -> None:
    too_many = await fake.slash(ALICE, CHANNEL_ID, "clips", {"count": 11})
    await fake.wait_until(lambda: any((r.content or "").startswith("refused")
                                      for r in fake.interaction_responses(too_many)))
    assert "refused: 400 50035" in [r.content for r in fake.interaction_responses(too_many)]
    fake.upload_limit = 1000  # each file fits, the three together do not
    too_big = await fake.slash(ALICE, CHANNEL_ID, "clips", {"count": 3, "size": 400})
    await fake.wait_until(lambda: any((r.content or "").startswith("refused")
                                      for r in fake.interaction_responses(too_big)))
    assert "refused: 413 40005" in [r.content for r in fake.interaction_responses(too_big)]
    with pytest.raises(ValueError, match="1..20"):
        await fake.slash(ALICE, CHANNEL_ID, "clips", {"count": 0})


async def test_ephemeral_answer_carries_flag_64_and_stays_private(
    fake: FakeDiscord, bot: StudioBot
) -> None:
    interaction = await fake.slash(ALICE, CHANNEL_ID, "balance")
    reply = await fake.wait_for_response(interaction)
    assert reply.flags & FLAG_EPHEMERAL
    assert fake.message(reply.message_id)["flags"] & FLAG_EPHEMERAL
    assert fake.channel_messages(CHANNEL_ID, include_ephemeral=False) == []
    await asyncio.sleep(0.05)
    assert bot.seen_messages == []  # ephemeral messages never go over the gateway


async def test_channel_send_with_file_survives_a_429(fake: FakeDiscord, bot: StudioBot) -> None:
    fake.fail_next("POST", r"/channels/\d+/messages", status=429, retry_after=0.1)
    channel = bot.get_channel(CHANNEL_ID)
    assert isinstance(channel, discord.TextChannel)
    sent = await channel.send("result", file=discord.File(io.BytesIO(b"clip-bytes"), "result.mp4"))
    attempts = fake.find_calls("POST", rf"/channels/{CHANNEL_ID}/messages")
    assert [c.status for c in attempts] == [429, 200]
    assert [f.filename for f in attempts[1].files] == ["result.mp4"]
    assert [m["content"] for m in fake.channel_messages(CHANNEL_ID)] == ["result"]
    assert await sent.attachments[0].read() == b"clip-bytes"


async def test_a_repeated_nonce_returns_the_message_already_posted(
    fake: FakeDiscord, bot: StudioBot
) -> None:
    channel = bot.get_channel(CHANNEL_ID)
    assert isinstance(channel, discord.TextChannel)
    first = await channel.send("result", nonce="lokiz-job1")
    again = await channel.send("result", file=discord.File(io.BytesIO(b"clip"), "r.mp4"),
                               nonce="lokiz-job1")
    other = await channel.send("result", nonce="lokiz-job2")
    assert again.id == first.id and other.id != first.id
    assert [m["id"] for m in fake.channel_messages(CHANNEL_ID)] == [str(first.id), str(other.id)]
    sent = fake.find_calls("POST", rf"/channels/{CHANNEL_ID}/messages")
    assert all(c.json["enforce_nonce"] for c in sent), "discord.py enforces a given nonce"
    assert fake.nonce_repeats == 1


async def test_a_nonce_is_forgotten_after_the_window(fake: FakeDiscord, bot: StudioBot) -> None:
    fake.nonce_window = 0.05
    channel = bot.get_channel(CHANNEL_ID)
    assert isinstance(channel, discord.TextChannel)
    first = await channel.send("one", nonce="lokiz-late")
    await asyncio.sleep(0.1)
    second = await channel.send("two", nonce="lokiz-late")
    assert second.id != first.id
    assert len(fake.channel_messages(CHANNEL_ID)) == 2


async def test_a_lost_answer_after_the_send_still_posted_the_message(
    fake: FakeDiscord, bot: StudioBot
) -> None:
    fake.fail_next("POST", r"/channels/\d+/messages", status=503, after=True)
    channel = bot.get_channel(CHANNEL_ID)
    assert isinstance(channel, discord.TextChannel)
    with pytest.raises(discord.DiscordServerError):
        await channel.send("result", nonce="lokiz-lost")
    assert [m["content"] for m in fake.channel_messages(CHANNEL_ID)] == ["result"]
    again = await channel.send("result", nonce="lokiz-lost")  # the retry: no second copy
    assert [m["id"] for m in fake.channel_messages(CHANNEL_ID)] == [str(again.id)]


async def test_upload_over_the_limit_is_refused_like_discord(
    fake: FakeDiscord, bot: StudioBot
) -> None:
    fake.upload_limit = 1024
    channel = bot.get_channel(CHANNEL_ID)
    assert isinstance(channel, discord.TextChannel)
    with pytest.raises(discord.HTTPException) as refused:
        await channel.send(file=discord.File(io.BytesIO(b"x" * 2048), "big.mp4"))
    assert (refused.value.status, refused.value.code) == (413, 40005)
    assert fake.channel_messages(CHANNEL_ID) == []


async def test_shared_clip_is_hidden_without_content_intent_but_context_menu_sees_it(
    fake: FakeDiscord, bot: StudioBot
) -> None:
    clip = fake.add_attachment(b"shared-clip", "dance.mp4", "video/mp4")
    shared = await fake.post_user_message(ALICE, CHANNEL_ID, "look at this", [clip])
    await fake.wait_until(lambda: bot.seen_messages)
    seen = bot.seen_messages[0]
    assert (seen.content, seen.attachments) == ("", [])
    interaction = await fake.message_command(BOB, CHANNEL_ID, "Remix this clip", shared)
    reply = await fake.wait_for_response(interaction)
    assert reply.content == "template clip: dance.mp4" and reply.ephemeral


async def test_answer_after_the_deadline_is_an_unknown_interaction(
    fake: FakeDiscord, bot: StudioBot
) -> None:
    fake.interaction_ack_timeout = 0.2
    await fake.slash(ALICE, CHANNEL_ID, "slow")
    late = await fake.wait_for(lambda c: c.path.startswith("/interactions/"))
    assert late.status == 404
    await fake.wait_until(lambda: bot.command_errors)
    original = bot.command_errors[0].__cause__
    assert isinstance(original, discord.NotFound) and original.code == 10062


async def test_gateway_reconnect_resumes_and_keeps_serving(
    fake: FakeDiscord, bot: StudioBot
) -> None:
    await fake.reconnect_gateway()
    await fake.wait_until(lambda: fake.resumes == 1 and fake.connected)
    assert len(fake.identify_payloads) == 1
    interaction = await fake.slash(ALICE, CHANNEL_ID, "balance")
    assert (await fake.wait_for_response(interaction)).content == "50 credits"


async def test_bot_closes_cleanly(fake: FakeDiscord, bot: StudioBot) -> None:
    await bot.close()
    assert bot.is_closed()
    await fake.wait_until(lambda: not fake.connected)
    assert fake.internal_errors == []


async def test_interactions_go_to_the_new_session_when_the_old_socket_died(
    fake: FakeDiscord,
) -> None:
    intents = discord.Intents.default().value
    async with aiohttp.ClientSession() as http:
        # A first bot process IDENTIFYs, then dies (SIGKILL): its socket drops, no close frame.
        first = await http.ws_connect(f"{fake.gateway_url}?v=10&encoding=json")
        assert (await first.receive_json())["op"] == 10
        identify = {"token": fake.token, "intents": intents, "properties": {}}
        await first.send_json({"op": 2, "d": identify})
        ready = await first.receive_json()
        assert ready["t"] == "READY"
        assert first._response.connection is not None
        first._response.connection.transport.abort()
        await fake.wait_until(lambda: not fake.connected)

        # The next process logs in with a fresh session and gets the presses.
        bot = StudioBot()
        await bot.login(fake.token)
        connection = asyncio.create_task(bot.connect())
        try:
            await asyncio.wait_for(bot.wait_until_ready(), timeout=5)
            await bot.tree.sync()
            opened = await fake.slash(ALICE, CHANNEL_ID, "studio")
            assert (await fake.wait_for_response(opened)).content == "studio s1"
            shared = await fake.post_user_message(BOB, CHANNEL_ID, "while you were gone")
            await fake.wait_until(lambda: bot.seen_messages)
        finally:
            await bot.close()
            await asyncio.wait_for(connection, timeout=5)

        # The dead session can still RESUME: it missed the message but never got the interaction.
        back = await http.ws_connect(f"{fake.gateway_url}?v=10&encoding=json")
        assert (await back.receive_json())["op"] == 10
        resume = {"token": fake.token, "session_id": ready["d"]["session_id"], "seq": ready["s"]}
        await back.send_json({"op": 6, "d": resume})
        replayed = []
        while not replayed or replayed[-1]["t"] != "RESUMED":
            replayed.append(await asyncio.wait_for(back.receive_json(), timeout=5))
        assert fake.resumes == 1
        kinds = [p["t"] for p in replayed]
        assert "INTERACTION_CREATE" not in kinds  # that went to the live session only
        missed = [p["d"]["id"] for p in replayed if p["t"] == "MESSAGE_CREATE"]
        assert str(shared["id"]) in missed
        await back.close()
    assert fake.internal_errors == []
