"""Discord sharded over processes (DISCORD_SHARD_IDS / DISCORD_SHARD_COUNT, REDIS_URL): two
real `python -m bot` processes, one shard each, against the fake gateway, on one PostgreSQL
and one Redis. Discord sends a guild's interactions to its shard `(guild_id >> 22) % 2`
and DMs to shard 0; an interaction's token reaches only the session it was sent to, so an
answered interaction was answered by the process owning that shard.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
import pytest_asyncio

from tests.discord_world import ALICE, BOB, BotProcess, Media, World, bot_env, make_media
from tests.fakes.discord import FakeDiscord
from tests.fakes.replicate import FakeReplicate

pytestmark = pytest.mark.asyncio(loop_scope="module")

GUILD_A = 810_000_000_000_000_001
GUILD_B = GUILD_A + (1 << 22)  # the next shard
CHANNEL_A = 810_000_000_000_000_010
CHANNEL_B = 810_000_000_000_000_011


def shard_of(guild_id: int | None, count: int = 2) -> int:
    return ((guild_id or 0) >> 22) % count


@dataclass
class Cluster:
    discord: FakeDiscord
    media: Media
    env: dict[str, str]
    work: Path
    bots: list[BotProcess]

    def world(self) -> World:
        """Helpers of the one-process world (answers, presses), over the same fake."""
        return World(self.discord, None, self.media, self.bots[0], self.work)  # type: ignore[arg-type]

    async def start(self, name: str, shard_ids: str) -> BotProcess:
        folder = self.work / name
        folder.mkdir(exist_ok=True)
        bot = BotProcess({**self.env, "DISCORD_SHARD_IDS": shard_ids}, folder)
        bot.start()
        self.bots.append(bot)
        return bot


async def connected(bot: BotProcess, timeout: float = 90) -> None:
    for _ in range(int(timeout / 0.1)):
        if "discord: connected" in bot.log() or not bot.alive:
            break
        await asyncio.sleep(0.1)
    assert bot.alive and "discord: connected" in bot.log(), bot.log()[-3000:]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory, postgres_database: str,
                  redis_session_prefix: str) -> AsyncIterator[Cluster]:
    from tests.conftest import REDIS_SERVER

    work = tmp_path_factory.mktemp("discord-shards")
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    media = make_media(work / "fixtures")
    async with FakeDiscord(shard_count=2) as discord, FakeReplicate() as replicate:
        discord.guild(GUILD_A, "Shard Zero Club")
        discord.channel(GUILD_A, CHANNEL_A, "zero")
        discord.guild(GUILD_B, "Shard One Club")
        discord.channel(GUILD_B, CHANNEL_B, "one")
        discord.member(ALICE, "alice")
        discord.member(BOB, "bob")
        env = bot_env(discord, replicate, work)
        env.update(
            DATABASE_URL=f"{postgres_database}?options={quote(f'-csearch_path={schema}')}",
            MEDIA_DIR=str(work / "media"), DISCORD_SHARD_COUNT="2",
            REDIS_URL=REDIS_SERVER, REDIS_KEY_PREFIX=f"{redis_session_prefix}shards:",
        )
        group = Cluster(discord, media, env, work, [])
        try:
            first = await group.start("zero", "0")
            await connected(first)  # the schema is migrated once, then the second joins
            second = await group.start("one", "1")
            await connected(second)
            yield group
        finally:
            for bot in group.bots:
                bot.stop()
            with psycopg.connect(postgres_database, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


async def test_each_process_runs_its_own_shard(cluster: Cluster) -> None:
    fake = cluster.discord
    assert shard_of(GUILD_A) == 0 and shard_of(GUILD_B) == 1
    assert sorted(fake.live_shards()) == [(0, 2), (1, 2)]
    assert [p["shard"] for p in fake.identify_payloads] == [[0, 2], [1, 2]]
    assert not fake.find_calls("GET", r"/gateway/bot"), "an explicit shard count needs no lookup"
    assert fake.guilds_sent_to((0, 2)) == {GUILD_A}
    assert fake.guilds_sent_to((1, 2)) == {GUILD_B}


@pytest.mark.parametrize(("guild", "channel"), [(GUILD_A, CHANNEL_A), (GUILD_B, CHANNEL_B)])
async def test_a_guild_is_served_and_its_buttons_pressed_on_its_shard(
    cluster: Cluster, guild: int, channel: int
) -> None:
    fake, world = cluster.discord, cluster.world()
    asked = await fake.slash(ALICE, channel, "capture", {"at": "1"},
                             attachments={"video": cluster.media.video})
    studio = await world.answer(asked, timeout=40)
    assert asked.shard == (shard_of(guild), 2)
    pressed = await fake.press(ALICE, studio["id"], "+1s")
    await world.handled(pressed)
    assert pressed.shard == (shard_of(guild), 2)
    await world.edited_to(studio["id"], "Frame at 0:02 ")
    world.assert_every_interaction_answered_in_time()


async def test_direct_messages_go_to_shard_zero(cluster: Cluster) -> None:
    fake, world = cluster.discord, cluster.world()
    dm = fake.dm(BOB)
    asked = await fake.slash(BOB, int(dm["id"]), "capture", {"at": "1"},
                             attachments={"video": cluster.media.video})
    studio = await world.answer(asked, timeout=40)
    assert asked.shard == (0, 2)
    pressed = await fake.press(BOB, studio["id"], "+1s")
    await world.handled(pressed)
    assert pressed.shard == (0, 2)


async def test_shards_move_between_processes_and_old_buttons_still_work(cluster: Cluster) -> None:
    """No per-process state: shard 1's process stops, and a process running both shards
    answers the buttons of a message the stopped one sent."""
    fake, world = cluster.discord, cluster.world()
    asked = await fake.slash(BOB, CHANNEL_B, "capture", {"at": "1"},
                             attachments={"video": cluster.media.video})
    studio = await world.answer(asked, timeout=40)
    for bot in cluster.bots:
        assert bot.stop() == 0, bot.log()[-2000:]
    await fake.wait_until(lambda: not fake.connected, timeout=20)
    both = await cluster.start("both", "0,1")
    await connected(both)
    assert sorted(fake.live_shards()) == [(0, 2), (1, 2)]
    pressed = await fake.press(BOB, studio["id"], "+1s")
    await world.handled(pressed)
    await world.edited_to(studio["id"], "Frame at 0:02 ")
    assert pressed.shard == (1, 2)
