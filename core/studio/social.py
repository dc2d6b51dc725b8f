"""Social in a chat (SPEC §12): a result's 👍 / 🌀 / 🗑, /feed, /top, /post, /delete.

Who may press what: 👍 and 🌀 Remix are open to everyone in the chat (a remix starts
the presser's own session with that clip); 🗑 and /delete belong to the post's owner,
and to an admin of the post's chat pressing there (ADMIN_IDS, or the platform's own
chat admins, asked lazily through `is_chat_admin` only when a non-owner deletes).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

from core import actions as act
from core import job_screens
from core.i18n import t
from core.jobs import SUCCEEDED, Job
from core.screens import Button, Screen
from core.social import FEED_PAGE_SIZE, Deleted, FeedPage, Post, PostGone, Posts
from core.social.screens import (
    delete_answer,
    like_answer,
    like_button,
    link_for,
    parse_post_id,
    post_screen,
    top_screen,
)
from core.studio.intake import Intake
from core.studio.people import Caller
from core.studio.replies import Alert, ChatContext, Edit, FeedClip, Reply, Send, SendFeed
from core.studio.workshop import Workshop, refuse

log = logging.getLogger(__name__)

AdminCheck = Callable[[], Awaitable[bool]]

# A result's message reaches the chat a moment before its post is stored (the delivered
# transition records both); a press in between waits this long for the post.
POST_RECORD_WAIT = 5.0


async def _nobody() -> bool:
    return False


class Social:
    def __init__(self, shop: Workshop, intake: Intake, posts: Posts) -> None:
        self.shop = shop
        self.intake = intake
        self.posts = posts

    # --- /feed, /top, /post, /delete -------------------------------------------------------
    async def feed(self, ctx: ChatContext, who: Caller, page: int = 0,
                   message_id: str | None = None) -> Reply:
        """A page of the chat's feed: a header with ◀ ▶ and the page's clips."""
        feed = await self.posts.feed(ctx.platform, ctx.chat_id, page)
        return Reply([feed_page(who.lang, feed, ctx, message_id)])

    async def top(self, ctx: ChatContext, who: Caller) -> Reply:
        creators = await self.posts.top(ctx.platform, ctx.chat_id)
        return Reply([Send(top_screen(who.lang, creators), ctx.message_id)])

    async def post(self, ctx: ChatContext, who: Caller, raw: str, is_admin: AdminCheck) -> Reply:
        """`/post ID`: the chain, only in the post's chat or to its owner (else "not found")."""
        lang = who.lang
        post_id = parse_post_id(raw)
        if post_id is None:
            return _say(ctx, t(lang, "social.post.bad_id", text=_short(raw)))
        chain = await self.posts.chain(post_id)
        admin = False
        if chain and chain[0].owner_id != who.user.id and chain[0].in_chat(ctx.platform, ctx.chat_id):
            admin = await is_admin()
        screen = post_screen(lang, chain, user_id=who.user.id, platform=ctx.platform,
                             chat_id=ctx.chat_id, asked=str(post_id), is_chat_admin=admin)
        return Reply([Send(screen, ctx.message_id)])

    async def delete_typed(self, ctx: ChatContext, who: Caller, raw: str, is_admin: AdminCheck) -> Reply:
        """`/delete ID`."""
        post_id = parse_post_id(raw)
        if post_id is None:
            return _say(ctx, t(who.lang, "social.post.bad_id", text=_short(raw)))
        outcome = await self._delete(ctx, who, post_id, is_admin)
        reply = _say(ctx, delete_answer(who.lang, outcome.value, post_id))
        if outcome is Deleted.DONE:
            await self._unpost_result_here(ctx, post_id, reply)
        return reply

    async def _delete(self, ctx: ChatContext, who: Caller, post_id: int, is_admin: AdminCheck) -> Deleted:
        post = await self.posts.get(post_id)
        admin = False
        if post is not None and post.owner_id != who.user.id and post.in_chat(ctx.platform, ctx.chat_id):
            admin = await is_admin()  # asked only when it decides
        return await self.posts.delete(post_id, user_id=who.user.id, platform=ctx.platform,
                                       chat_id=ctx.chat_id, is_chat_admin=admin)

    # --- presses ------------------------------------------------------------------------
    async def press(self, ctx: ChatContext, who: Caller, action: act.Action,
                    is_admin: AdminCheck = _nobody) -> Reply:
        """A social button: on a post (feed, /post), a feed page, or 🗑 on a result."""
        if isinstance(action, act.TurnFeedPage):
            return await self.feed(ctx, who, action.page, ctx.message_id)
        if isinstance(action, act.DeleteClip):
            return await self.delete_result(ctx, who, action.job, is_admin)
        if not isinstance(action, act.PostAction):
            return refuse(who.lang)
        post = await self.posts.get(action.post)
        if post is None or not _visible(post, ctx, who):
            return refuse(who.lang, "social.post.gone")
        if isinstance(action, act.LikePost):
            return await self.like(ctx, who, post)
        if isinstance(action, act.RemixPost):
            return await self.remix(ctx, who, post)
        outcome = await self._delete(ctx, who, post.id, is_admin)
        reply = Reply([Alert(delete_answer(who.lang, outcome.value, post.id))])
        if outcome is Deleted.DONE and ctx.message_id:
            reply.add(Edit(Screen(t(who.lang, "social.post.deleted", id=post.id)), ctx.message_id))
        if outcome is Deleted.DONE:
            await self._unpost_result_here(ctx, post.id, reply)
        return reply

    async def like(self, ctx: ChatContext, who: Caller, post: Post, job: Job | None = None) -> Reply:
        """👍: like, or take the like back; the pressed message's 👍 shows the new count."""
        try:
            liked, likes = await self.posts.toggle_like(post.id, who.user.id)
        except PostGone:
            return refuse(who.lang, "social.like.gone")
        reply = Reply([Alert(like_answer(who.lang, liked))])
        if ctx.message_id:
            if job is not None:
                screen = await self.result_buttons(ctx, job, likes)
            else:
                screen = Screen("", ((like_button(who.lang, post.id, likes),
                                      Button(t(who.lang, "social.button.remix"), act.RemixPost(post.id))),))
            reply.add(Edit(screen, ctx.message_id, buttons_only=True))
        return reply

    async def like_result(self, ctx: ChatContext, who: Caller, job: Job) -> Reply:
        """👍 under a delivered result (its buttons carry the job: the post is made after)."""
        post = await self._post_of_result(job.id)
        if post is None:
            return refuse(who.lang, "error.job_not_ready")
        return await self.like(ctx, who, post, job)

    async def remix(self, ctx: ChatContext, who: Caller, post: Post) -> Reply:
        """🌀 Remix: the presser's own session on the post's clip."""
        clip = await self.clip_of(post)
        if clip is None:
            return refuse(who.lang, "social.remix.clip_gone")
        copy = self.shop.media.temp(clip.suffix or ".mp4")
        shutil.copyfile(clip, copy)
        reply_to = post.message_id if post.in_chat(ctx.platform, ctx.chat_id) else None
        return await self.intake.clip(ctx, who, copy, reply_to=reply_to or ctx.message_id,
                                      source_post=post.id)

    async def remix_result(self, ctx: ChatContext, who: Caller, job: Job) -> Reply:
        post = await self._post_of_result(job.id)
        if post is not None:  # a deleted post's clip is not remixed any more
            return await self.remix(ctx, who, post) if not post.deleted else refuse(who.lang, "social.post.gone")
        output = await self.shop.media.here(job.output_path) if job.output_path else None
        if output is None or not output.exists():  # made on another instance: fetched
            return refuse(who.lang, "error.session_expired")
        copy = self.shop.media.temp(".mp4")
        shutil.copyfile(output, copy)
        return await self.intake.clip(ctx, who, copy, reply_to=ctx.message_id)

    async def delete_result(self, ctx: ChatContext, who: Caller, job_id: str, is_admin: AdminCheck) -> Reply:
        """🗑 under a result: the owner (or an admin of the chat) takes its post down."""
        post = await self._post_of_result(job_id)
        if post is None:
            return refuse(who.lang, "error.job_not_found")
        outcome = await self._delete(ctx, who, post.id, is_admin)
        reply = Reply([Alert(delete_answer(who.lang, outcome.value, post.id))])
        if outcome is Deleted.DONE and ctx.message_id:
            reply.add(await self._unposted_result(ctx, post.job_id, ctx.message_id))
        return reply

    async def _unpost_result_here(self, ctx: ChatContext, post_id: int, reply: Reply) -> None:
        """A post deleted by `/delete` or 🗑 under `/post`: its result message loses the
        post's buttons too. In this chat the reply edits it; typed elsewhere (the owner's
        private chat with the bot), the engine's notifier for the post's platform does."""
        post = await self.posts.get(post_id)
        if post is None or not post.message_id:
            return
        if post.in_chat(ctx.platform, ctx.chat_id):
            if post.message_id != ctx.message_id:
                reply.add(await self._unposted_result(ctx, post.job_id, post.message_id))
            return
        notifier = self.shop.engine.notifiers.get(post.platform)
        if notifier is None:
            log.info("post %d deleted; no %s notifier to update its result", post.id, post.platform)
            return
        there = replace(ctx, platform=post.platform, chat_id=post.chat_id)
        edit = await self._unposted_result(there, post.job_id, post.message_id)
        try:
            await notifier.edit_buttons(post.chat_id, post.message_id, edit.screen)
        except Exception as exc:  # the post is deleted either way; only its buttons lag
            log.warning("post %d deleted; its result's buttons in %s chat %s not updated: %s",
                        post.id, post.platform, post.chat_id, exc)

    async def _unposted_result(self, ctx: ChatContext, job_id: str, message_id: str) -> Edit:
        """A result whose post was deleted: no 👍 / 🌀 / 🗑 (the post is gone), but its
        owner's Again and Add music stay (they work on the job, not the post)."""
        job = await self.shop.jobs.get(job_id)
        if job is None:
            return Edit(Screen(""), message_id, buttons_only=True)
        on_result = replace(ctx, message_id=message_id)  # Again presses count per result message
        return Edit(await self.result_buttons(on_result, job, 0, post_deleted=True), message_id,
                    buttons_only=True)

    async def source_of_message(self, ctx: ChatContext, message_id: str | None) -> int | None:
        """The live post delivered as `message_id` in this chat (a `/glitch` reply to it)."""
        if not message_id:
            return None
        post = await self.posts.by_message(ctx.platform, ctx.chat_id, message_id)
        return post.id if post is not None and not post.deleted else None

    # --- helpers ---------------------------------------------------------------------------
    async def _post_of_result(self, job_id: str) -> Post | None:
        """A result's post; while its job is still being delivered (sent, not yet
        recorded), wait for the record rather than refuse the press."""
        deadline = time.monotonic() + POST_RECORD_WAIT
        while True:
            post = await self.posts.of_job(job_id)
            if post is not None:
                return post
            job = await self.shop.jobs.get(job_id)
            if job is None or job.status != SUCCEEDED or time.monotonic() >= deadline:
                return None
            await asyncio.sleep(0.05)

    async def result_buttons(self, ctx: ChatContext, job: Job, likes: int, *,
                             post_deleted: bool = False) -> Screen:
        """The buttons of the result message `ctx.message_id` (its Again version included)."""
        from core.studio.results import again_prefix  # results imports this module

        return job_screens.result_screen(
            job, "", local_preview=False, likes=likes, post_deleted=post_deleted,
            again=await self.shop.ledger.presses(again_prefix(ctx, job)),
        )

    async def clip_of(self, post: Post) -> Path | None:
        """The post's kept clip, while it is kept (POST_TTL_DAYS); fetched from the shared
        store when another instance kept it."""
        if not post.clip_path:
            return None
        clip = await self.shop.media.here(post.clip_path)
        return clip if clip.is_file() else None


def feed_page(lang: str, feed: FeedPage, ctx: ChatContext, message_id: str | None) -> SendFeed:
    """A feed page as a header (title, ◀ ▶) and one clip per post (caption, 👍 n, 🌀)."""
    if not feed.posts:
        return SendFeed(Screen(t(lang, "social.feed.empty")), (), message_id)
    paging = []
    if feed.has_previous:
        paging.append(Button(t(lang, "social.button.previous"), act.TurnFeedPage(feed.page - 1)))
    if feed.has_next:
        paging.append(Button(t(lang, "social.button.next"), act.TurnFeedPage(feed.page + 1)))
    header = Screen(t(lang, "social.feed.title", page=feed.page + 1, pages=feed.pages),
                    (tuple(paging),) if paging else ())
    clips = []
    for rank, post in enumerate(feed.posts, feed.page * FEED_PAGE_SIZE + 1):
        link = link_for(post, ctx.platform, ctx.chat_id)
        caption = t(lang, "social.feed.item", rank=rank, owner=link.owner or "?", likes=post.likes,
                    id=post.id, generation=post.generation)
        buttons = ((like_button(lang, post.id, post.likes),
                    Button(t(lang, "social.button.remix"), act.RemixPost(post.id))),)
        path = Path(post.clip_path) if post.clip_path and Path(post.clip_path).is_file() else None
        clips.append(FeedClip(post.id, path, post.file_id, caption, buttons))
    return SendFeed(header, tuple(clips), message_id)


def _visible(post: Post, ctx: ChatContext, who: Caller) -> bool:
    """A post's buttons work in its own chat, and for its owner anywhere."""
    return not post.deleted and (post.in_chat(ctx.platform, ctx.chat_id) or post.owner_id == who.user.id)


def _say(ctx: ChatContext, text: str) -> Reply:
    return Reply([Send(Screen(text), ctx.message_id)])


def _short(text: str, limit: int = 30) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
