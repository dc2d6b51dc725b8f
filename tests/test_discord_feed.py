"""A feed page's layout on Discord: numbered buttons within Discord's limits, and clips
that share one upload (the page's message itself is tested end to end in
test_discord_social.py)."""

from __future__ import annotations

from pathlib import Path

from adapters.discord.components import MAX_PER_ROW, MAX_ROWS, build_view
from adapters.discord.feed import clip_numbers, feed_buttons, shares, upload_budget
from core.actions import LikePost, RemixPost, TurnFeedPage
from core.screens import Button, Screen
from core.studio.replies import FeedClip, SendFeed


def page(ranks: range, *, paging: bool = True) -> SendFeed:
    clips = tuple(
        FeedClip(100 + rank, Path(f"/nowhere/{rank}.mp4"), None, f"{rank}. @user{rank} · 👍 {rank} · post {100 + rank}",
                 ((Button(f"👍 {rank}", LikePost(100 + rank)), Button("🌀 Remix", RemixPost(100 + rank))),))
        for rank in ranks
    )
    rows = ((Button("◀", TurnFeedPage(0)), Button("▶", TurnFeedPage(2))),) if paging else ()
    return SendFeed(Screen("🔥 Top clips · page 2/3", rows), clips)


def test_five_clips_and_the_paging_fit_discords_rows_numbered_by_rank() -> None:
    rows = feed_buttons(page(range(6, 11)))
    assert len(rows) <= MAX_ROWS and all(len(row) <= MAX_PER_ROW for row in rows)
    labels = [[button.label for button in row] for row in rows]
    assert labels == [
        ["#6 👍 6", "#7 👍 7", "#8 👍 8", "#9 👍 9", "#10 👍 10"],
        ["#6 🌀 Remix", "#7 🌀 Remix", "#8 🌀 Remix", "#9 🌀 Remix", "#10 🌀 Remix"],
        ["◀", "▶"],
    ]
    view = build_view(Screen("", rows))
    assert view is not None
    sent = view.to_components()
    assert len(sent) == 3
    ids = [button["custom_id"] for row in sent for button in row["components"]]
    assert len(ids) == len(set(ids)) == 12  # Discord refuses duplicate custom ids


def test_a_caption_without_a_rank_is_numbered_by_its_place() -> None:
    clips = tuple(FeedClip(n, None, None, "a clip", ()) for n in (7, 8))
    assert clip_numbers(clips) == [1, 2]
    assert clip_numbers(page(range(11, 13)).clips) == [11, 12]


def test_clips_share_one_upload_small_ones_whole() -> None:
    budget = 10_000
    allowed = shares([1_000, 9_000, 20_000], budget)
    assert allowed[0] == 1_000  # fits as it is
    assert sum(allowed) <= budget and allowed[1] == allowed[2] == 4_500
    assert shares([100, 200], budget) == [100, 200]
    assert upload_budget(10 * 1024 * 1024) < 10 * 1024 * 1024
