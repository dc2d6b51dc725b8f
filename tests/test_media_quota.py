"""MAX_MEDIA_MB_PER_USER: one person cannot fill the disk; the answer says why, in their language."""

from __future__ import annotations

from pathlib import Path

from core.credits import CreditLedger
from core.errors import MediaQuotaExceeded
from core.media_store import MediaStore
from core.storage import Database
from tests.fakes.telegram import ChatUser
from tests.test_telegram_render import running

KB = 1024


def padded(clip: Path, target: Path, total_kb: int) -> Path:
    """The clip with trailing padding: still a playable video, of a chosen size and new bytes."""
    data = clip.read_bytes()
    assert len(data) < total_kb * KB
    target.write_bytes(data + b"\0" * (total_kb * KB - len(data)))
    return target


async def test_a_user_over_the_media_quota_is_told_and_others_are_not_affected(tmp_path: Path) -> None:
    async with running(tmp_path, local=False, max_media_mb_per_user=2) as world:
        fake, clip = world.fake, world.media.clip
        first = padded(clip, tmp_path / "first.mp4", 1200)
        second = padded(clip, tmp_path / "second.mp4", 1000)
        mina = ChatUser(fake, 601, "Mina")
        jun = ChatUser(fake, 602, "Jun", language_code="ko")

        async def answer(user: ChatUser, video: Path):  # type: ignore[no-untyped-def]
            mark = fake.mark()
            await user.send_video(video, caption="0:01")
            return await fake.wait_for(
                lambda c: c.method in ("sendPhoto", "sendMessage") and c.ok
                and c.params.get("chat_id") == user.id, after=mark, timeout=30)

        for user in (mina, jun):
            mark = fake.mark()
            await user.send_text("/start")
            await fake.wait_for("sendMessage", chat_id=user.id, after=mark, timeout=30)
        got = await answer(mina, first)
        assert got.method == "sendPhoto", got.params
        refused = await answer(mina, second)
        assert refused.method == "sendMessage"
        assert "the limit is 2 MB per person" in refused.params["text"]
        assert (await answer(mina, first)).method == "sendPhoto"  # the same file is not counted twice
        assert (await answer(jun, second)).method == "sendPhoto"  # a quota is per person
        assert "최대 2MB" in (await answer(jun, first)).params["text"]  # in his language (Korean)
        kept = sorted(p.stat().st_size for p in (tmp_path / "media" / "in").rglob("*.mp4"))
        assert kept == sorted([first.stat().st_size, second.stat().st_size])
        assert list((tmp_path / "media" / "tmp").iterdir()) == []  # the refused download is gone


async def test_the_same_bytes_count_once_and_a_discarded_file_not_at_all(
    tmp_path: Path, db: Database, ledger: CreditLedger
) -> None:
    owner = (await ledger.ensure_user("telegram", "7"))[0].id
    media = MediaStore(tmp_path / "media", ttl_hours=1, db=db, quota_mb=1)
    source = media.temp(".bin")
    source.write_bytes(b"a" * (600 * KB))
    kept = await media.keep(source, owner=owner)
    assert await media.usage(owner) == 600 * KB
    again = media.temp(".bin")
    again.write_bytes(b"a" * (600 * KB))
    assert await media.keep(again, owner=owner) == kept
    assert await media.usage(owner) == 600 * KB
    bigger = media.temp(".bin")
    bigger.write_bytes(b"b" * (500 * KB))
    try:
        await media.keep(bigger, owner=owner)
    except MediaQuotaExceeded as exc:
        assert exc.params["limit_mb"] == "1" and exc.params["used_mb"] == "0.6"
    else:
        raise AssertionError("the quota let 1.1 MB in")
    assert not bigger.exists()
    await media.discard(kept, owner=owner)
    assert await media.usage(owner) == 0 and not kept.exists()
