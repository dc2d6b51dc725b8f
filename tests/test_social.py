"""Social (SPEC §12) on both stores: posts and lineage with privacy, likes, feed, /top,
inline results and delete."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from core.actions import unpack
from core.catalogue import JobRequest
from core.credits import CreditLedger
from core.jobs import DELIVERED, Job
from core.social import (
    DELETE,
    FEED_PAGE,
    LIKE,
    REMIX,
    Deleted,
    PostGone,
    Posts,
    feed_screen,
    lineage_line,
    parse_post_id,
    post_screen,
    top_screen,
)
from core.storage import Database, open_database
from core.users import User

pytestmark = pytest.mark.both_stores

DAY = 86400.0
NOW = 1_800_000_000.0
GROUP_A, GROUP_B = "-100", "-200"


def decode_action(data: str):
    """A packed button as (wire name, its fields as text): what the platform carries."""
    action = unpack(data)
    assert action is not None, data
    return action.wire, tuple(str(getattr(action, f.name)) for f in dataclasses.fields(action))



class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def delivered(
    user: User, job_id: str, chat: str = GROUP_A, *, prompt: str = "", template: str | None = None,
    source_post: int | None = None, file_id: str | None = "file-x", output: str | None = None,
) -> Job:
    return Job(
        id=job_id, user_id=user.id, platform="telegram", chat_id=chat, language="en",
        session_id=None, reply_to_message_id=None, status_message_id=None, action="template",
        model="m", backend="local",
        request=JobRequest("template", prompt=prompt, template=template, source_post=source_post),
        prepared_inputs=None, prediction_id=None, price=20, status=DELIVERED, error_class=None,
        error_detail=None, output_path=output, delivered_message_id=f"m-{job_id}",
        delivered_file_id=file_id, delivery_attempts=1, likes=0, created_at=NOW, started_at=NOW,
        deadline_at=None, finished_at=NOW,
    )


async def person(ledger: CreditLedger, n: int, username: str | None = None) -> User:
    user, _ = await ledger.ensure_user("telegram", str(n), display_name=f"Person {n}",
                                       username=username)
    return user


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def posts(db: Database, clock: Clock, tmp_path: Path) -> Posts:
    return Posts(db, media_dir=tmp_path / "media", clock=clock)


async def test_a_remix_of_a_remix_counts_generations_and_names_sources_only_in_their_chat(
    posts: Posts, ledger: CreditLedger
):
    alice, bob, carol = (await person(ledger, 1, "alice"), await person(ledger, 2, "bob"),
                         await person(ledger, 3, "carol"))
    original = await posts.record_delivered(delivered(alice, "j1"))
    remix = await posts.record_delivered(delivered(bob, "j2", source_post=original.id))
    # carol remixes bob's remix in another chat
    far = await posts.record_delivered(delivered(carol, "j3", GROUP_B), source_post_id=remix.id)
    assert (original.generation, remix.generation, far.generation) == (1, 2, 3)
    assert remix.source_post_id == original.id and far.source_post_id == remix.id

    assert lineage_line("en", original, None) == ""
    assert lineage_line("en", remix, original) == "🌀 remix of @alice's clip · generation 2"
    assert lineage_line("en", far, remix) == (
        "🌀 remix of a clip from another chat · generation 3"
    )
    assert "@bob" not in lineage_line("ko", far, remix)

    chain = await posts.chain(far.id)
    assert [p.id for p in chain] == [far.id, remix.id, original.id]
    # In chat B (where carol's post is) neither source is named
    shown = post_screen("en", chain, user_id=carol.id, platform="telegram", chat_id=GROUP_B)
    assert "generation 3" in shown.text and "@carol" in shown.text
    assert "@alice" not in shown.text and "@bob" not in shown.text
    assert shown.text.count("a clip from another chat") == 2
    # bob's remix, asked about in chat A: both generations named, with their posts
    in_a = post_screen("en", await posts.chain(remix.id), user_id=carol.id,
                       platform="telegram", chat_id=GROUP_A)
    assert "@bob" in in_a.text and f"@alice's clip (post {original.id})" in in_a.text


async def test_post_answers_only_in_its_chat_or_to_its_owner(posts: Posts, ledger: CreditLedger):
    alice, bob = await person(ledger, 1, "alice"), await person(ledger, 2, "bob")
    post = await posts.record_delivered(delivered(alice, "j1"))
    chain = await posts.chain(post.id)
    elsewhere = post_screen("en", chain, user_id=bob.id, platform="telegram", chat_id=GROUP_B,
                            asked=str(post.id))
    assert elsewhere.text == post_screen("en", [], user_id=bob.id, platform="telegram",
                                         chat_id=GROUP_B, asked=str(post.id)).text
    assert "@alice" not in elsewhere.text and elsewhere.buttons == ()
    owner_in_dm = post_screen("en", chain, user_id=alice.id, platform="telegram", chat_id="1")
    assert f"Post {post.id}" in owner_in_dm.text
    here = post_screen("ko", chain, user_id=bob.id, platform="telegram", chat_id=GROUP_A)
    actions = [decode_action(b.data) for b in here.all_buttons()]
    assert actions == [(LIKE, (str(post.id),)), (REMIX, (str(post.id),))]
    # 🗑 for the owner, and for an admin of the post's chat there
    assert (DELETE, (str(post.id),)) in [decode_action(b.data) for b in owner_in_dm.all_buttons()]
    admin_here = post_screen("en", chain, user_id=bob.id, platform="telegram", chat_id=GROUP_A,
                             is_chat_admin=True)
    assert (DELETE, (str(post.id),)) in [decode_action(b.data) for b in admin_here.all_buttons()]
    assert parse_post_id(" 12 ") == 12 and parse_post_id("#7") == 7
    assert parse_post_id("12; drop") is None and parse_post_id("٣") is None


async def test_recording_a_delivery_twice_makes_one_post_and_keeps_the_clip(
    posts: Posts, ledger: CreditLedger, tmp_path: Path
):
    alice = await person(ledger, 1, "alice")
    output = tmp_path / "media" / "outputs" / "j1.mp4"
    output.parent.mkdir(parents=True)
    output.write_bytes(b"clip")
    job = delivered(alice, "j1", output=str(output))
    first, again = await asyncio.gather(posts.record_delivered(job), posts.record_delivered(job))
    assert first.id == again.id
    kept = Path(first.clip_path or "")
    assert kept.parent.name == "posts" and kept.read_bytes() == b"clip"
    output.unlink()  # the inputs' and outputs' cleanup ran: the post's clip stays
    assert kept.read_bytes() == b"clip"


async def test_likes_toggle_one_per_person_and_survive_reopening_the_database(
    database_url: str, ledger: CreditLedger, clock: Clock
):
    db = await open_database(database_url)
    posts = Posts(db, clock=clock)
    alice, bob, carol = (await person(ledger, 1, "alice"), await person(ledger, 2, "bob"),
                         await person(ledger, 3, "carol"))
    post = await posts.record_delivered(delivered(alice, "j1"))
    assert await posts.toggle_like(post.id, bob.id) == (True, 1)
    assert await posts.toggle_like(post.id, carol.id) == (True, 2)
    assert await posts.toggle_like(post.id, bob.id) == (False, 1)
    assert await posts.toggle_like(post.id, bob.id) == (True, 2)
    await db.close()

    reopened = await open_database(database_url)
    try:
        again = Posts(reopened, clock=clock)
        stored = await again.get(post.id)
        assert stored is not None and stored.likes == 2
        assert await again.has_liked(post.id, bob.id)
        assert await again.toggle_like(post.id, carol.id) == (False, 1)
    finally:
        await reopened.close()


async def test_many_presses_at_once_leave_a_count_that_matches_the_likes(
    posts: Posts, ledger: CreditLedger
):
    alice = await person(ledger, 1, "alice")
    people = [await person(ledger, 10 + i) for i in range(8)]
    post = await posts.record_delivered(delivered(alice, "j1"))
    # each person presses three times at once: everyone ends liked
    presses = [posts.toggle_like(post.id, p.id) for p in people for _ in range(3)]
    results = await asyncio.gather(*presses)
    assert sorted(count for _, count in results)[-1] <= len(people)
    stored = await posts.get(post.id)
    assert stored is not None and stored.likes == len(people) == stored.score
    assert [await posts.has_liked(post.id, p.id) for p in people] == [True] * len(people)
    top = await posts.top("telegram", GROUP_A)
    assert [(c.mention, c.likes) for c in top] == [("@alice", len(people))]


async def test_the_feed_of_chat_a_never_shows_chat_b(posts: Posts, ledger: CreditLedger, clock: Clock):
    alice, bob = await person(ledger, 1, "alice"), await person(ledger, 2, "bob")
    mine = [await posts.record_delivered(delivered(alice, f"a{i}")) for i in range(7)]
    theirs = [await posts.record_delivered(delivered(bob, f"b{i}", GROUP_B)) for i in range(3)]
    for post in theirs:
        await posts.toggle_like(post.id, alice.id)
    await posts.toggle_like(mine[3].id, bob.id)
    await posts.toggle_like(mine[5].id, alice.id)  # a self-like ranks nothing

    first = await posts.feed("telegram", GROUP_A)
    second = await posts.feed("telegram", GROUP_A, page=1)
    assert (first.pages, len(first.posts), len(second.posts)) == (2, 5, 2)
    shown = [p.id for p in first.posts + second.posts]
    assert sorted(shown) == sorted(p.id for p in mine)
    assert shown[0] == mine[3].id  # most liked by others first, then newest
    assert shown[1:] == sorted((p.id for p in mine if p.id != mine[3].id), reverse=True)
    assert all(p.chat_id == GROUP_A for p in first.posts + second.posts)

    screen = feed_screen("en", first, platform="telegram", chat_id=GROUP_A)
    actions = [decode_action(b.data) for b in screen.all_buttons()]
    assert actions.count((FEED_PAGE, ("1",))) == 1 and (FEED_PAGE, ("-1",)) not in actions
    assert (LIKE, (str(mine[3].id),)) in actions and "@bob" not in screen.text
    last = feed_screen("en", second, platform="telegram", chat_id=GROUP_A)
    assert [decode_action(b.data) for b in last.buttons[-1]] == [(FEED_PAGE, ("0",))]
    assert "6. @alice" in last.text

    clock.now += 8 * DAY  # a week on: nothing left in the feed
    assert (await posts.feed("telegram", GROUP_A)).posts == ()
    assert "7" in feed_screen("en", await posts.feed("telegram", GROUP_A), platform="telegram",
                              chat_id=GROUP_A).text


async def test_self_likes_do_not_count_in_top(posts: Posts, ledger: CreditLedger, clock: Clock):
    alice, bob, carol = (await person(ledger, 1, "alice"), await person(ledger, 2, "bob"),
                         await person(ledger, 3, "carol"))
    a1 = await posts.record_delivered(delivered(alice, "a1"))
    a2 = await posts.record_delivered(delivered(alice, "a2"))
    b1 = await posts.record_delivered(delivered(bob, "b1"))
    for post in (a1, a2):
        await posts.toggle_like(post.id, alice.id)  # self-likes: shown, not ranked
    await posts.toggle_like(a1.id, carol.id)
    await posts.toggle_like(b1.id, carol.id)
    await posts.toggle_like(b1.id, alice.id)
    far = await posts.record_delivered(delivered(carol, "c1", GROUP_B))
    for liker in (alice, bob):
        await posts.toggle_like(far.id, liker.id)

    top = await posts.top("telegram", GROUP_A)
    assert [(c.mention, c.likes) for c in top] == [("@bob", 2), ("@alice", 1)]
    assert (await posts.get(a1.id)).likes == 2  # type: ignore[union-attr]
    assert "1. @bob · 👍 2" in top_screen("en", top).text
    assert [c.mention for c in await posts.top("telegram", GROUP_B)] == ["@carol"]

    clock.now += 31 * DAY  # likes older than 30 days no longer count
    assert await posts.top("telegram", GROUP_A) == []
    assert top_screen("ko", []).text


async def test_delete_takes_a_post_out_of_feed_top_and_inline(posts: Posts, ledger: CreditLedger):
    alice, bob, carol = (await person(ledger, 1, "alice"), await person(ledger, 2, "bob"),
                         await person(ledger, 3, "carol"))
    kept = await posts.record_delivered(delivered(alice, "a1", prompt="a cat dancing"))
    gone = await posts.record_delivered(delivered(alice, "a2", prompt="a cat surfing"))
    await posts.toggle_like(gone.id, bob.id)
    await posts.toggle_like(gone.id, carol.id)
    await posts.toggle_like(kept.id, bob.id)
    assert [c.likes for c in await posts.top("telegram", GROUP_A)] == [3]
    assert len(await posts.recent_posts_of(alice.id, "cat")) == 2

    # a stranger cannot; a member who is not admin cannot; elsewhere it does not exist
    assert await posts.delete(gone.id, user_id=bob.id, platform="telegram", chat_id=GROUP_A,
                              is_chat_admin=False) is Deleted.NOT_ALLOWED
    assert await posts.delete(gone.id, user_id=bob.id, platform="telegram", chat_id=GROUP_B,
                              is_chat_admin=True) is Deleted.NOT_FOUND
    assert await posts.delete(gone.id, user_id=bob.id, platform="telegram", chat_id=GROUP_A,
                              is_chat_admin=True) is Deleted.DONE
    assert await posts.delete(gone.id, user_id=alice.id, platform="telegram", chat_id="1",
                              is_chat_admin=False) is Deleted.ALREADY

    assert [p.id for p in (await posts.feed("telegram", GROUP_A)).posts] == [kept.id]
    assert [(c.mention, c.likes) for c in await posts.top("telegram", GROUP_A)] == [("@alice", 1)]
    assert [p.id for p in await posts.recent_posts_of(alice.id, "cat")] == [kept.id]
    with pytest.raises(PostGone):
        await posts.toggle_like(gone.id, carol.id)
    assert "deleted" in post_screen("en", await posts.chain(gone.id), user_id=bob.id,
                                    platform="telegram", chat_id=GROUP_A).text
    # its remix now says its source was deleted
    remix = await posts.record_delivered(delivered(bob, "b1", source_post=gone.id))
    assert lineage_line("en", remix, await posts.get(gone.id)) == (
        "🌀 remix of a deleted clip · generation 2"
    )
    assert await posts.delete_as_operator(kept.id) is Deleted.DONE
    assert await posts.delete_as_operator(99999) is Deleted.NOT_FOUND
    assert await posts.top("telegram", GROUP_A) == []


async def test_inline_results_are_the_own_clips_matching_template_or_prompt_words(
    posts: Posts, ledger: CreditLedger
):
    alice, bob = await person(ledger, 1, "alice"), await person(ledger, 2, "bob")
    hug = await posts.record_delivered(delivered(alice, "a1", template="hug", prompt="Two Friends"))
    cat = await posts.record_delivered(delivered(alice, "a2", prompt="A cat 100% happy"))
    await posts.record_delivered(delivered(alice, "a3", prompt="a cat, unsent", file_id=None))
    await posts.record_delivered(delivered(bob, "b1", prompt="a cat too"))
    assert [p.id for p in await posts.recent_posts_of(alice.id, "")] == [cat.id, hug.id]
    assert [p.id for p in await posts.recent_posts_of(alice.id, "HUG")] == [hug.id]
    assert [p.id for p in await posts.recent_posts_of(alice.id, "two friends")] == [hug.id]
    assert [p.id for p in await posts.recent_posts_of(alice.id, "100%")] == [cat.id]
    assert await posts.recent_posts_of(alice.id, "a_cat") == []  # `_` is no wildcard
    assert await posts.recent_posts_of(alice.id, "cat hug") == []
    assert [p.id for p in await posts.recent_posts_of(alice.id, "", limit=1)] == [cat.id]


async def test_top_kept_between_likes_matches_a_count_from_scratch(
    posts: Posts, ledger: CreditLedger, clock: Clock
):
    import random

    rng = random.Random(14)
    people = [await person(ledger, i, f"u{i}") for i in range(6)]
    made: list = []
    liked: dict[tuple[int, int], float] = {}  # (post, person) -> when
    deleted: set[int] = set()
    for step in range(120):
        await posts.top("telegram", GROUP_A)  # built early, then kept up to date
        roll = rng.random()
        if roll < 0.15 or not made:
            owner = rng.choice(people)
            made.append((await posts.record_delivered(delivered(owner, f"j{step}")), owner))
        elif roll < 0.2:
            post, _ = rng.choice(made)
            await posts.delete_as_operator(post.id)
            deleted.add(post.id)
        elif roll < 0.3:
            clock.now += rng.choice([0.3, 1, 4, 12]) * DAY
        else:
            post, _ = rng.choice(made)
            who = rng.choice(people)
            if post.id in deleted:
                continue
            liked_now, _ = await posts.toggle_like(post.id, who.id)
            if liked_now:
                liked[(post.id, who.id)] = clock.now
            else:
                del liked[(post.id, who.id)]
        since_day = int((clock.now - 30 * DAY) // DAY) + 1
        expected: dict[str, int] = {}
        for (post_id, who_id), when in liked.items():
            post, owner = next((p, o) for p, o in made if p.id == post_id)
            if who_id != owner.id and post_id not in deleted and int(when // DAY) >= since_day:
                expected[owner.mention_name] = expected.get(owner.mention_name, 0) + 1
        top = await posts.top("telegram", GROUP_A)
        assert {c.mention: c.likes for c in top} == expected, step


async def test_the_cleanup_keeps_a_posts_clip_for_post_ttl_days_not_media_ttl_hours(
    tmp_path: Path,
):
    import os
    import time

    from core.media_store import MediaStore
    from core.social.posts import keep_clip

    root = tmp_path / "media"
    output = root / "outputs" / "j1.mp4"
    output.parent.mkdir(parents=True)
    output.write_bytes(b"clip")
    kept = keep_clip(root, output, "j1")
    old = root / "outputs" / "j0.mp4"
    old.write_bytes(b"old clip")
    gone = keep_clip(root, old, "j0")
    now = time.time()
    os.utime(output, (now - 3 * DAY, now - 3 * DAY))  # past MEDIA_TTL_HOURS, not POST_TTL_DAYS
    os.utime(old, (now - 31 * DAY, now - 31 * DAY))
    await MediaStore(root, ttl_hours=48, post_ttl_days=30).clean()
    assert not output.exists() and kept.read_bytes() == b"clip"
    assert not old.exists() and not gone.exists()


async def test_bulk_loaded_likes_recount_to_what_pressing_gives(
    db: Database, posts: Posts, ledger: CreditLedger
):
    alice, bob, carol = (await person(ledger, 1, "alice"), await person(ledger, 2, "bob"),
                         await person(ledger, 3, "carol"))
    pressed = await posts.record_delivered(delivered(alice, "a1"))
    loaded = await posts.record_delivered(delivered(alice, "a2"))
    for who in (alice, bob, carol):
        await posts.toggle_like(pressed.id, who.id)
    async with db.transaction() as uow:
        await uow.bulk.insert("post_likes", ("post_id", "user_id", "liked_at", "day"), [
            (loaded.id, who.id, NOW, int(NOW // DAY)) for who in (alice, bob, carol)
        ])
        await uow.likes.recount()
        with pytest.raises(ValueError):
            await uow.bulk.insert("ledger", ("delta",), [(1,)])
    again = {p.id: (p.likes, p.score) for p in (await posts.feed("telegram", GROUP_A)).posts}
    assert again == {pressed.id: (3, 2), loaded.id: (3, 2)}
    assert [(c.mention, c.likes) for c in await posts.top("telegram", GROUP_A)] == [("@alice", 4)]
