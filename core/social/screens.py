"""What social looks like in a chat: the caption's lineage line, /post, /feed and /top.

Privacy (SPEC §12): a post's owner is named, and its message linked, only where the
post was made; elsewhere it is "a clip from another chat".
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from core.actions import DeletePost, LikePost, RemixPost, TurnFeedPage
from core.i18n import t
from core.screens import Button, Screen
from core.social.posts import FEED_PAGE_SIZE, Creator, FeedPage, Post

# The wire names of the social buttons (their typed actions are in core.actions).
LIKE, REMIX, DELETE, FEED_PAGE = LikePost.wire, RemixPost.wire, DeletePost.wire, TurnFeedPage.wire


@dataclass(frozen=True)
class Link:
    """A post shown in a chat: its owner's name and message only when posted there."""

    post_id: int
    generation: int
    owner: str | None  # None: from another chat, or deleted
    message_id: str | None  # the adapter links it (same chat only)
    deleted: bool = False


def link_for(post: Post, platform: str, chat_id: str) -> Link:
    """How `post` may be shown in the chat (platform, chat_id)."""
    if post.deleted:
        return Link(post.id, post.generation, None, None, deleted=True)
    if post.in_chat(platform, chat_id):
        return Link(post.id, post.generation, post.owner_mention, post.message_id)
    return Link(post.id, post.generation, None, None)


def source_link(post: Post, source: Post | None) -> Link | None:
    """The source of a remix as its result's chat may see it; None for an original."""
    if post.source_post_id is None:
        return None
    if source is None:
        return Link(post.source_post_id, post.generation - 1, None, None, deleted=True)
    return link_for(source, post.platform, post.chat_id)


def remix_line(lang: str, platform: str, chat_id: str, source: Post | None) -> str:
    """The lineage line of a clip about to be delivered in (platform, chat_id) as a remix of
    `source` (its post is recorded once it is delivered): "" for an original."""
    if source is None:
        return ""
    if source.deleted:
        return t(lang, "social.lineage.removed", generation=source.generation + 1)
    link = link_for(source, platform, chat_id)
    if link.owner is None:
        return t(lang, "social.lineage.other_chat", generation=source.generation + 1)
    return t(lang, "social.lineage.same_chat", owner=link.owner, generation=source.generation + 1)


def lineage_line(lang: str, post: Post, source: Post | None) -> str:
    """The result caption's line: "remix of @alice's clip · generation 3" ("" for an
    original). `source` is the post it was remixed from (`Posts.get(post.source_post_id)`)."""
    link = source_link(post, source)
    if link is None:
        return ""
    if link.deleted:
        return t(lang, "social.lineage.removed", generation=post.generation)
    if link.owner is None:
        return t(lang, "social.lineage.other_chat", generation=post.generation)
    return t(lang, "social.lineage.same_chat", owner=link.owner, generation=post.generation)


def parse_post_id(text: str) -> int | None:
    """The post number in `/post 12` (also `#12`), or None for anything else."""
    text = text.strip().removeprefix("#")
    if not text.isascii() or not text.isdigit() or len(text) > 15:
        return None
    return int(text) or None


def may_see_post(post: Post, *, user_id: int, platform: str, chat_id: str) -> bool:
    """/post answers only in the post's chat, or to its owner."""
    return post.in_chat(platform, chat_id) or post.owner_id == user_id


def chain_links(chain: list[Post], platform: str, chat_id: str) -> list[Link]:
    """Every generation of a chain as the asking chat may see it (newest first)."""
    return [link_for(post, platform, chat_id) for post in chain]


def post_screen(
    lang: str, chain: list[Post], *, user_id: int, platform: str, chat_id: str,
    asked: str = "", is_chat_admin: bool = False,
) -> Screen:
    """The answer to `/post ID`: the post and where it comes from, generation by
    generation. `chain` is `Posts.chain(id)`; a post the asker may not see is "not found".
    Its owner (or an admin of its chat, there) also gets 🗑 Delete."""
    if not chain or not may_see_post(chain[0], user_id=user_id, platform=platform, chat_id=chat_id):
        return Screen(t(lang, "social.post.not_found", id=asked or (chain[0].id if chain else "")))
    post = chain[0]
    if post.deleted:
        return Screen(t(lang, "social.post.deleted", id=post.id))
    head = link_for(post, platform, chat_id)
    lines = [t(lang, "social.post.title", id=post.id, generation=post.generation, likes=post.likes)]
    lines.append(
        t(lang, "social.post.by", owner=head.owner) if head.owner
        else t(lang, "social.post.by_other_chat")
    )
    if post.source_post_id is None:
        lines.append(t(lang, "social.post.original"))
    else:
        lines.append(t(lang, "social.post.chain_head"))
        for link in chain_links(chain[1:], platform, chat_id):
            lines.append(_chain_item(lang, link))
        oldest = chain[-1]
        if oldest.source_post_id is not None:  # cut at CHAIN_LIMIT, or a source that is gone
            lines.append(t(lang, "social.post.chain_more"))
    row = [_like_button(lang, post), Button(t(lang, "social.button.remix"), RemixPost(post.id))]
    if post.owner_id == user_id or (is_chat_admin and post.in_chat(platform, chat_id)):
        row.append(Button(t(lang, "social.button.delete"), DeletePost(post.id), "danger"))
    return Screen("\n".join(lines), (tuple(row),))


def _chain_item(lang: str, link: Link) -> str:
    if link.deleted:
        return t(lang, "social.post.chain_removed", generation=link.generation)
    if link.owner is None:
        return t(lang, "social.post.chain_hidden", generation=link.generation)
    return t(lang, "social.post.chain_named", generation=link.generation, owner=link.owner, id=link.post_id)


def _like_button(lang: str, post: Post) -> Button:
    return like_button(lang, post.id, post.likes)


def like_button(lang: str, post_id: int, likes: int) -> Button:
    """👍 with the count (a bare 👍 for none, as under a result), for /post and the feed
    (edit it after a toggle)."""
    label = t(lang, "social.button.like", likes=likes) if likes else "👍"
    return Button(label, LikePost(post_id))


def feed_screen(lang: str, feed: FeedPage, *, platform: str, chat_id: str) -> Screen:
    """`/feed`: a page of the chat's top posts, 👍 and 🌀 Remix per post, ◀ ▶ to page."""
    if not feed.posts:
        return Screen(t(lang, "social.feed.empty"))
    lines = [t(lang, "social.feed.title", page=feed.page + 1, pages=feed.pages)]
    rows: list[tuple[Button, ...]] = []
    for rank, post in enumerate(feed.posts, feed.page * FEED_PAGE_SIZE + 1):
        link = link_for(post, platform, chat_id)
        lines.append(t(
            lang, "social.feed.item", rank=rank, owner=link.owner or "?", likes=post.likes,
            id=post.id, generation=post.generation,
        ))
        rows.append((
            like_button(lang, post.id, post.likes),
            Button(t(lang, "social.button.remix"), RemixPost(post.id)),
        ))
    paging = []
    if feed.has_previous:
        paging.append(Button(t(lang, "social.button.previous"), TurnFeedPage(feed.page - 1)))
    if feed.has_next:
        paging.append(Button(t(lang, "social.button.next"), TurnFeedPage(feed.page + 1)))
    if paging:
        rows.append(tuple(paging))
    return Screen("\n".join(lines), tuple(rows))


def top_screen(lang: str, creators: list[Creator]) -> Screen:
    """`/top`: the chat's most-liked creators of the last 30 days."""
    if not creators:
        return Screen(t(lang, "social.top.empty"))
    lines = [t(lang, "social.top.title")]
    lines.extend(
        t(lang, "social.top.item", rank=rank, owner=creator.mention, likes=creator.likes)
        for rank, creator in enumerate(creators, 1)
    )
    return Screen("\n".join(lines))


def like_answer(lang: str, liked: bool) -> str:
    """The short alert after a 👍 press."""
    return t(lang, "social.like.added" if liked else "social.like.removed")


def delete_answer(lang: str, outcome_value: str, post_id: int | str) -> str:
    """What the person who pressed delete (or typed /delete ID) is told."""
    return t(lang, f"social.delete.{outcome_value}", id=post_id)


@dataclass(frozen=True)
class InlineClip:
    """One of the asker's clips offered in inline mode (sent by file id: nothing uploads)."""

    post_id: int
    file_id: str
    title: str
    description: str


@dataclass(frozen=True)
class InlineAnswer:
    """What inline mode answers: the asker's clips, or, when they typed faster than
    INLINE_PER_SECOND allows, no clips and `slow_down` (what to tell them, translated)."""

    clips: tuple[InlineClip, ...] = ()
    slow_down: str | None = None


def inline_clip(lang: str, post: Post) -> InlineClip:
    assert post.file_id is not None
    day = dt.datetime.fromtimestamp(post.created_at, dt.UTC).strftime("%Y-%m-%d")
    return InlineClip(
        post.id, post.file_id, t(lang, "social.inline.title", id=post.id, likes=post.likes),
        t(lang, "social.inline.description", generation=post.generation, day=day),
    )
