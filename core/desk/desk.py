"""The Desk: the one door between the chat platforms and the core.

An adapter turns a platform update into a typed event and hands it to
`Desk.serve` with an `Outlet` (how to acknowledge and render on its platform).
Once, for every platform, the Desk: rate-limits the user, resolves them and
their language, welcomes a first contact, dispatches the event (studio, account
or admin) through a table keyed by the event's type, and turns errors into
localized alerts. It answers with a `Reply` carrying its language and what the
studio now waits for (`Awaiting`), which each adapter maps to its own hint.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from core import actions as act
from core.desk.events import (
    AccountAsked,
    AdminCommand,
    ClipShared,
    Event,
    FeedAsked,
    FormAnswered,
    GlitchShortcut,
    LanguageChosen,
    MusicAsked,
    PhotoSent,
    PostAsked,
    PostDeleteAsked,
    Pressed,
    Started,
    TemplateShortcut,
    TextTyped,
    TopAsked,
    Unusable,
    VideoSent,
)
from core.errors import LokizError
from core.i18n import normalize_language, t
from core.ratelimit import INLINE_BURST, INLINE_PER_SECOND, RateLimiter, UpdateRateLimiter
from core.screens import Screen
from core.sessions import Awaiting, Step
from core.social.screens import InlineAnswer, inline_clip
from core.studio import views
from core.studio.account import Account
from core.studio.admin import AdminDesk
from core.studio.people import Caller
from core.studio.replies import Alert, AskText, ChatContext, Edit, Reply, Send
from core.studio.steps import GLITCH_MODES
from core.studio.studio import Studio

log = logging.getLogger(__name__)


class AnswerTooLate(Exception):
    """The platform no longer takes an answer to this update (a Discord interaction first
    answered after its 3 seconds: 404 Unknown interaction). Nothing can be said any more;
    the message says which update it was."""


class Outlet(Protocol):
    """How one update is answered on its platform. `acknowledge` and `render` raise
    `AnswerTooLate` when the platform refuses the answer for having waited too long."""

    async def acknowledge(self) -> None:
        """The update passed the rate limit and real work starts: platforms with an
        answer deadline (Discord) acknowledge now."""
        ...

    async def render(self, reply: Reply) -> None: ...

    async def is_chat_admin(self) -> bool:
        """Whether the user is an admin of this chat on the platform (Telegram: a chat
        administrator or its creator; Discord: Manage Messages; the web: never). The Desk
        asks only when someone deletes a post that is not theirs."""
        ...


AdminCheck = Callable[[], Awaitable[bool]]


async def _no_chat_admin() -> bool:
    return False


class FileIds(Protocol):
    """The platforms' ids for bytes they already have (a re-send uploads nothing)."""

    async def file_id(self, platform: str, path: Path) -> str | None: ...

    async def remember(self, platform: str, path: Path, file_id: str) -> None: ...


Handler = Callable[[Any, Caller], Awaitable[Reply]]
# Events whose answer may depend on the user being an admin of the chat.
AdminHandler = Callable[[Any, Caller, AdminCheck], Awaitable[Reply]]


class Desk:
    def __init__(self, studio: Studio, account: Account, admin: AdminDesk, files: FileIds,
                 *, starter_credits: int, rate_limiter: RateLimiter | None = None,
                 inline_rate_limiter: RateLimiter | None = None) -> None:
        self.studio = studio
        self.account = account
        self.admin = admin
        self.files = files
        self.starter_credits = starter_credits
        self.rate_limiter: RateLimiter = rate_limiter or UpdateRateLimiter()
        # Inline queries (one per keystroke) have a bucket of their own: see INLINE_BURST.
        self.inline_rate_limiter: RateLimiter = inline_rate_limiter or UpdateRateLimiter(
            INLINE_BURST, INLINE_PER_SECOND)
        intake = studio.intake
        self._handlers: dict[type[Event], Handler] = {
            Started: self._started,
            VideoSent: lambda e, who: self._with_file(e.file, lambda p: intake.video(e.ctx, who, p, e.caption)),
            PhotoSent: lambda e, who: self._with_file(e.file, lambda p: intake.photo(e.ctx, who, p)),
            TextTyped: lambda e, who: intake.text(e.ctx, who, e.text),
            FormAnswered: self._form,
            ClipShared: self._clip_shared,
            MusicAsked: lambda e, who: intake.music(e.ctx, who, e.prompt),
            TemplateShortcut: self._template_shortcut,
            GlitchShortcut: self._glitch_shortcut,
            AccountAsked: self._account,
            LanguageChosen: lambda e, who: studio.people.set_language(e.ctx, who, e.code),
            AdminCommand: lambda e, who: admin.handle(e.ctx, who, e.command, list(e.args), e.replied),
            Unusable: self._unusable,
            FeedAsked: lambda e, who: studio.social.feed(e.ctx, who, e.page),
            TopAsked: lambda e, who: studio.social.top(e.ctx, who),
        }
        self._admin_handlers: dict[type[Event], AdminHandler] = {
            Pressed: self._pressed,
            PostAsked: lambda e, who, admin: studio.social.post(e.ctx, who, e.post_id, admin),
            PostDeleteAsked: lambda e, who, admin: studio.social.delete_typed(e.ctx, who, e.post_id, admin),
        }

    # --- the door ---------------------------------------------------------------------------
    async def serve(self, event: Event, outlet: Outlet) -> None:
        """Answer `event` and render the answer; if rendering fails, say so once. An update
        the platform no longer lets us answer (`AnswerTooLate`) is one warning line."""
        platform, kind = event.ctx.platform, type(event).__name__
        try:
            reply = await self.answer(event, acknowledge=outlet.acknowledge, is_chat_admin=outlet.is_chat_admin)
            try:
                await outlet.render(reply)
            except AnswerTooLate:
                raise
            except Exception:
                log.exception("%s: could not render the answer to %s", platform, kind)
                try:
                    await outlet.render(_generic(reply.lang))
                except Exception:
                    log.warning("%s: could not tell the user about an error", platform, exc_info=True)
        except AnswerTooLate as late:  # nothing to fix here, and nobody left to tell
            log.warning("%s: %s not answered: %s", platform, kind, late)

    async def answer(self, event: Event, *,
                     acknowledge: Callable[[], Awaitable[None]] | None = None,
                     is_chat_admin: AdminCheck = _no_chat_admin) -> Reply:
        """What the core answers to `event` (never raises for what a user can cause).
        `is_chat_admin` is the platform's check (`Outlet.is_chat_admin`), asked lazily."""
        ctx = event.ctx
        if not await self.rate_limiter.check(f"{ctx.platform}:{ctx.user_id}"):
            lang = await self.language(ctx.platform, ctx.user_id, ctx.language_code)
            return Reply([_alert(lang, "error.slow_down")], lang=lang)
        who: Caller | None = None
        try:
            if acknowledge is not None:
                await acknowledge()
            who = await self.studio.people.resolve(ctx)
            handler = self._handlers.get(type(event))
            if handler is not None:
                reply = await handler(event, who)
            else:
                reply = await self._admin_handlers[type(event)](event, who, self._admin_check(ctx, is_chat_admin))
            reply.awaiting = await self._awaiting(reply)
        except AnswerTooLate:
            raise  # the platform takes no answer now: `serve` notes it
        except LokizError as exc:
            log.info("%s: %s refused: %s", ctx.platform, type(event).__name__, exc)
            lang = who.lang if who else await self.language(ctx.platform, ctx.user_id, ctx.language_code)
            reply = Reply([_alert(lang, exc.key, **exc.params)], lang=lang)
        except Exception:
            log.exception("%s: %s failed", ctx.platform, type(event).__name__)
            lang = who.lang if who else await self.language(ctx.platform, ctx.user_id, ctx.language_code)
            reply = _generic(lang)
        if who is not None:
            reply.lang = reply.lang or who.lang
            if who.first and not isinstance(event, Started):  # once, whatever they asked first
                welcome = views.welcome(who.lang, who.user.balance, self._starter(ctx.platform))
                _greet(reply, welcome, ctx)
        return reply

    # --- what adapters may ask besides events --------------------------------------------------
    async def language(self, platform: str, user_id: str, language_code: str | None = None) -> str:
        """A user's language, read only (no user is created; never fails)."""
        return await self.studio.people.language(platform, user_id, language_code)

    async def bind_message(self, session_id: str, message_id: str) -> None:
        """The studio message of a `Send` with a session went out as `message_id`."""
        await self.studio.bind_message(session_id, message_id)

    def temp_file(self, suffix: str) -> Path:
        """Where an adapter downloads a user's file before the studio takes it."""
        return self.studio.temp_file(suffix)

    async def own_clips(self, platform: str, user_id: str, words: str,
                        language_code: str | None = None) -> InlineAnswer:
        """Inline mode: the asker's own recent clips (those the platform holds a file id
        of), newest first, filtered by template name or prompt words. An inline query
        carries no chat, so nothing chat-scoped is read; a stranger gets nothing.
        Rate-limited per user (INLINE_BURST, then INLINE_PER_SECOND): past it nothing is
        read, not even the user's language (their client's applies), and the answer is
        only `slow_down`."""
        if not await self.inline_rate_limiter.check(f"inline:{platform}:{user_id}"):
            lang = normalize_language(language_code, self.studio.people.default_language)
            return InlineAnswer(slow_down=t(lang, "social.inline.slow_down"))
        user = await self.studio.people.ledger.users.find(platform, user_id)
        if user is None:
            return InlineAnswer()
        lang = await self.language(platform, user_id, language_code)
        posts = await self.studio.social.posts.recent_posts_of(user.id, words)
        return InlineAnswer(tuple(inline_clip(lang, post) for post in posts
                                  if post.platform == platform and post.file_id))

    def template_choices(self, lang: str, typed: str = "") -> list[tuple[str, str]]:
        """(id, name) of the templates whose name or id contains `typed` (autocomplete)."""
        wanted = typed.strip().lower()
        names = ((item.id, item.text("name", lang)) for item in self.studio.templates)
        return [(tid, name) for tid, name in names if wanted in name.lower() or wanted in tid]

    def _starter(self, platform: str) -> int:
        """What a first contact on `platform` was given (web users may get fewer)."""
        return self.studio.people.ledger.starter_for(platform)

    # --- handlers -------------------------------------------------------------------------
    async def _started(self, event: Started, who: Caller) -> Reply:
        screen = views.welcome(who.lang, who.user.balance,
                               self._starter(event.ctx.platform) if who.first else 0)
        return Reply([Send(screen, event.ctx.message_id)])

    def _admin_check(self, ctx: ChatContext, is_chat_admin: AdminCheck) -> AdminCheck:
        """ADMIN_IDS, else the platform's chat admin check (asked once, only if needed)."""
        asked: list[bool] = []

        async def check() -> bool:
            if self.admin.is_admin(ctx):
                return True
            if not asked:
                try:
                    asked.append(await is_chat_admin())
                except Exception:
                    log.warning("%s: could not ask whether %s is a chat admin", ctx.platform,
                                ctx.user_id, exc_info=True)
                    asked.append(False)
            return asked[0]

        return check

    async def _pressed(self, event: Pressed, who: Caller, is_admin: AdminCheck) -> Reply:
        """A press: social buttons (👍 🌀 🗑 on posts, ◀ ▶ on the feed) here, the rest in the studio."""
        action = act.unpack(event.data)
        if isinstance(action, act.PostAction | act.TurnFeedPage | act.DeleteClip):
            return await self.studio.social.press(event.ctx, who, action, is_admin)
        return await self.studio.press(event.ctx, who, action)

    @staticmethod
    async def _unusable(event: Unusable, who: Caller) -> Reply:
        return _say(event, t(who.lang, event.key))

    @staticmethod
    async def _with_file(file: Any, then: Callable[[Path], Awaitable[Reply]]) -> Reply:
        return await then(await file.fetch())

    async def _clip_shared(self, event: ClipShared, who: Caller) -> Reply:
        """A clip to remix; if it is one of the bot's posts (a reply to it), the result names it."""
        source = await self.studio.social.source_of_message(
            event.ctx, event.shared_message_id or event.reply_to)
        clip = await event.clip.fetch()
        return await self.studio.intake.clip(event.ctx, who, clip, reply_to=event.reply_to,
                                             start=event.start, source_post=source)

    async def _form(self, event: FormAnswered, who: Caller) -> Reply:
        path = await event.file.fetch() if event.file is not None else None
        return await self.studio.intake.form(event.ctx, who, event.session_id, event.text, path, event.is_video)

    async def _account(self, event: AccountAsked, who: Caller) -> Reply:
        account, ctx = self.account, event.ctx
        if event.what == "balance":
            return await account.balance(ctx, who)
        if event.what == "jobs":
            return await account.jobs_list(ctx, who)
        if event.what == "job":
            return await account.job(ctx, who, event.job_id)
        return await account.help(ctx, who)

    async def _template_shortcut(self, event: TemplateShortcut, who: Caller) -> Reply:
        """Video → frame → Template (→ the named template), as if the user had pressed through."""
        ctx, studio = event.ctx, self.studio
        reply = await studio.intake.video(ctx, who, await event.video.fetch(), event.at)
        session_id = _studio_session(reply)
        if session_id is None or await self._step(session_id) != Step.FRAME:
            return reply  # an error, or a contact sheet to pick from first
        follow = await studio.press(ctx, who, act.OpenTemplates(session_id))
        if event.template and event.template in {item.id for item in studio.templates}:
            follow = await studio.press(ctx, who, act.PickTemplate(session_id, event.template))
        return _then(reply, follow)

    async def _glitch_shortcut(self, event: GlitchShortcut, who: Caller) -> Reply:
        """A clip (a new remix, or the one a Glitch press waits for) and/or the user's image."""
        ctx, intake = event.ctx, self.studio.intake
        if event.clip is None and event.image is None:
            return _say(event, t(who.lang, "discord.glitch_needs_input"))
        reply = Reply()
        if event.clip is not None:
            clip = await event.clip.fetch()
            waiting = await intake.waiting(ctx, who)
            if event.image is None and waiting is not None and waiting.awaiting == Awaiting.CLIP:
                reply = await intake.video(ctx, who, clip, None)
            else:
                reply = await intake.clip(ctx, who, clip)
            if _studio_session(reply) is None:
                return reply  # the clip was refused (with the reason)
        if event.image is not None:
            image = await event.image.fetch()
            if event.image_is_video:
                follow = await intake.video(ctx, who, image, event.at)
            else:
                follow = await intake.photo(ctx, who, image)
            if not follow.outs:
                return _say(event, t(who.lang, "discord.glitch_no_waiting"))
            reply = _then(reply, follow)
        session_id = _studio_session(reply)
        if event.mode in GLITCH_MODES and session_id and await self._step(session_id) == Step.MODES:
            reply = _then(reply, await self.studio.press(ctx, who, act.PickMode(session_id, event.mode)))
        return reply

    # --- helpers ----------------------------------------------------------------------------
    async def _step(self, session_id: str) -> Step | None:
        session = await self.studio.shop.sessions.get(session_id)
        return session.step if session is not None else None

    async def _awaiting(self, reply: Reply) -> Awaiting:
        session_id = _studio_session(reply) or _session_on_screen(reply)
        return await self.studio.awaiting(session_id) if session_id else Awaiting.NOTHING


def _greet(reply: Reply, welcome: Screen, ctx: ChatContext) -> None:
    """Put a first contact's welcome before the answer: above its words, in the same message,
    when that message is plain text only the caller reads (one message to send, not two);
    otherwise as a message of its own, first."""
    first = reply.outs[0] if reply.outs else None
    if (isinstance(first, Send) and first.session_id is None and first.screen.image is None
            and (first.screen.ephemeral or ctx.chat_kind == "private")):
        screen = replace(first.screen, text=f"{welcome.text}\n\n{first.screen.text}")
        reply.outs[0] = replace(first, screen=screen)
    else:
        reply.outs.insert(0, Send(replace(welcome, ephemeral=True), ctx.message_id))


def _studio_session(reply: Reply) -> str | None:
    """The session of the reply's new studio message, if it sends one."""
    return next((o.session_id for o in reply.outs if isinstance(o, Send) and o.session_id), None)


def _session_on_screen(reply: Reply) -> str | None:
    """The session whose buttons an edited screen shows (or whose prompt is asked for)."""
    for out in reply.outs:
        if isinstance(out, AskText):
            return out.session_id
        if isinstance(out, Edit):
            for button in out.screen.all_buttons():
                if isinstance(button.action, act.SessionAction):
                    return button.action.session
    return None


def _then(first: Reply, follow: Reply) -> Reply:
    """`first` without its studio message, then `follow` (which continued that session)."""
    kept = [o for o in first.outs if not (isinstance(o, Send) and o.session_id)]
    return Reply([*kept, *follow.outs])


def _say(event: Event, text: str) -> Reply:
    return Reply([Send(Screen(text, ephemeral=True), event.ctx.message_id)])


def _alert(lang: str, key: str, **params: Any) -> Alert:
    return Alert(t(lang, key, **params))


def _generic(lang: str) -> Reply:
    return Reply([_alert(lang, "error.generic")], lang=lang)
