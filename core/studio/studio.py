"""The studio flow (SPEC §2): video in → frame → template / glitch / music → job.

Every entry point takes a `ChatContext` and returns a `Reply` — the adapter
renders it. All rules (ownership, expiry, prices, validation, what happens on
each press) live here, so Telegram and Discord behave the same.
"""

from __future__ import annotations

import asyncio
import logging
import random
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import job_screens
from core.catalogue import (
    GLITCH_ANIMATE,
    GLITCH_REPLACE,
    MAX_PROMPT_CHARS,
    MUSIC,
    TEMPLATE,
    JobRequest,
    ModelSpec,
    TemplateCatalogue,
)
from core.credits import CreditLedger
from core.engine import JobEngine
from core.errors import (
    InsufficientCredits,
    LokizError,
    MediaError,
    PromptInvalid,
    TimestampInvalid,
    TimestampOutOfRange,
)
from core.i18n import normalize_language, t
from core.jobs import DELIVERED, SUCCEEDED, Job, JobStore
from core.media.capture import capture_frame
from core.media.edit import GLITCH_MAX_SIDE, mux_music, trim_clip
from core.media.intake import accept_video, is_animated_gif
from core.media.probe import VideoInfo, probe, probe_image
from core.media.sheet import contact_sheet
from core.media.slots import work_owner
from core.media.timestamps import check_in_range, parse_timestamp
from core.media_store import MediaStore
from core.notify import OutputMedia
from core.screens import Button, Screen, decode_action
from core.sessions import Session, SessionStore, StaleSession
from core.studio import views
from core.studio.replies import Alert, AskText, ChatContext, Edit, Reply, Send, SendMedia
from core.users import User, is_whole_number

log = logging.getLogger(__name__)

MOOD_PROMPTS = {
    "lofi": "lo-fi chill hip hop beat, warm vinyl crackle, mellow keys",
    "epic": "epic cinematic trailer music, big drums, soaring strings",
    "happy": "happy upbeat pop, bright synths, clapping, summer vibe",
    "dark": "dark synthwave, pulsing bass, moody retro arpeggios",
}
MOOD_LYRICS = {
    "lofi": "la la la, slow and easy, the night is calm",
    "epic": "rise up, the storm is calling, we ride tonight",
    "happy": "sunshine on my face, dancing all day long",
    "dark": "neon shadows in the rain, chasing the midnight train",
}


@dataclass(frozen=True)
class StudioLimits:
    max_video_seconds: float = 600
    glitch_max_seconds: float = 10
    preview_upload_bytes: int = 10 * 1024 * 1024


class Studio:
    def __init__(
        self,
        *,
        ledger: CreditLedger,
        sessions: SessionStore,
        jobs: JobStore,
        engine: JobEngine,
        models: dict[str, ModelSpec],
        templates: TemplateCatalogue,
        media: MediaStore,
        limits: StudioLimits,
        default_language: str = "en",
        starter_credits: int = 0,
        music_is_bark: bool = True,
    ) -> None:
        self.ledger = ledger
        self.sessions = sessions
        self.jobs = jobs
        self.engine = engine
        self.models = models
        self.templates = templates
        self.media = media
        self.limits = limits
        self.default_language = default_language
        self.starter_credits = starter_credits
        self.music_is_bark = music_is_bark
        self._locks: dict[str, asyncio.Lock] = {}

    # --- who --------------------------------------------------------------------
    async def user(self, ctx: ChatContext) -> tuple[User, str, bool]:
        """The user behind `ctx` (created with starter credits on first contact),
        their language, and whether this is their first contact."""
        user, first = await self.ledger.ensure_user(
            ctx.platform, ctx.user_id, display_name=ctx.display_name,
            username=ctx.username, platform_language=ctx.language_code,
        )
        work_owner.set(user.ref)  # this update's media work queues fairly, as this user's
        return user, self.language_of(user, ctx), first

    def language_of(self, user: User, ctx: ChatContext | None = None) -> str:
        if user.language:
            return user.language
        code = (ctx.language_code if ctx else None) or user.platform_language
        return normalize_language(code, self.default_language)

    # --- start -----------------------------------------------------------------------
    async def start(self, ctx: ChatContext) -> Reply:
        user, lang, first = await self.user(ctx)
        screen = views.welcome(lang, user.balance, self.ledger.starter_for(ctx.platform) if first else 0)
        return Reply([Send(screen, ctx.message_id)])

    # --- media in ----------------------------------------------------------------------
    async def video(self, ctx: ChatContext, path: Path, caption: str | None = None) -> Reply:
        """A video arrived (downloaded to `path`), maybe with a time in its caption."""
        user, lang, _ = await self.user(ctx)
        try:
            stored, info = await self._take_video(path, user.id)
        except MediaError as exc:
            return self._error(ctx, lang, exc)
        waiting = await self.sessions.latest(
            user_id=user.id, platform=ctx.platform, chat_id=ctx.chat_id, awaiting=True
        )
        if waiting is not None and waiting.awaiting == "clip":
            return await self._clip_arrived(ctx, lang, waiting, stored, info.duration, caption)
        if waiting is not None and waiting.awaiting == "image":
            at = self._caption_time(caption, info.duration)
            frame = await capture_frame(stored, at if isinstance(at, float) else 0.0,
                                        self.media.session_dir(waiting.id) / "image.jpg")
            return await self._image_arrived(ctx, lang, waiting, frame)
        session = await self.sessions.create(
            user_id=user.id, platform=ctx.platform, chat_id=ctx.chat_id, chat_kind=ctx.chat_kind,
            step="sheet", data={"video": str(stored), "duration": info.duration,
                                "source_message_id": ctx.message_id},
        )
        at = self._caption_time(caption, info.duration)
        if isinstance(at, float):
            return await self._show_frame(ctx, lang, session, at, send=True)
        reply = Reply()
        if isinstance(at, LokizError):
            reply.add(Send(Screen(t(lang, at.key, **at.params)), ctx.message_id))
        return await self._show_sheet(ctx, lang, session, reply)

    async def _take_video(self, path: Path, owner: int) -> tuple[Path, VideoInfo]:
        """Keep a downloaded video under its content address and check it (MediaError if bad,
        or over the owner's media quota); GIF / Motion-JPEG clips come back as MP4."""
        stored = await self.media.keep(path, owner=owner)
        try:
            return await accept_video(stored, max_seconds=self.limits.max_video_seconds)
        except MediaError:
            await self.media.discard(stored, owner=owner)
            raise

    def _caption_time(self, caption: str | None, duration: float) -> float | LokizError | None:
        if not caption or not caption.strip():
            return None
        try:
            return check_in_range(parse_timestamp(caption), duration)
        except (TimestampInvalid, TimestampOutOfRange) as exc:
            return exc

    async def photo(self, ctx: ChatContext, path: Path) -> Reply:
        """A photo arrived: the user's image for a glitch that waits for one."""
        if await is_animated_gif(path):  # a GIF clip is a video on every platform
            return await self.video(ctx, path)
        user, lang, _ = await self.user(ctx)
        waiting = await self.sessions.latest(
            user_id=user.id, platform=ctx.platform, chat_id=ctx.chat_id, awaiting=True
        )
        try:
            stored = await self.media.keep(path, owner=user.id)
            await probe_image(stored)
        except MediaError as exc:
            path.unlink(missing_ok=True)
            return self._error(ctx, lang, exc)
        if waiting is None or waiting.awaiting != "image":
            if ctx.chat_kind == "group":
                return Reply()  # a photo in a group that nobody asked for is not ours
            return Reply([Send(Screen(t(lang, "studio.photo_without_clip")), ctx.message_id)])
        return await self._image_arrived(ctx, lang, waiting, stored)

    async def text(self, ctx: ChatContext, text: str) -> Reply:
        """Typed text: a time, a prompt, or chatter (answered with a hint in private)."""
        user, lang, _ = await self.user(ctx)
        waiting = await self.sessions.latest(
            user_id=user.id, platform=ctx.platform, chat_id=ctx.chat_id, awaiting=True
        )
        if waiting is not None and waiting.awaiting in ("prompt", "music_prompt"):
            return await self._prompt_arrived(ctx, lang, waiting, text)
        if waiting is not None and waiting.awaiting == "time":
            return await self._typed_time(ctx, lang, waiting, text)
        if ctx.chat_kind == "group":
            return Reply()
        latest = await self.sessions.latest(user_id=user.id, platform=ctx.platform, chat_id=ctx.chat_id)
        if latest is not None and latest.get("video"):
            try:
                parse_timestamp(text)
            except TimestampInvalid:
                pass
            else:
                return await self._typed_time(ctx, lang, latest, text)
        return Reply([Send(Screen(t(lang, "studio.hint")), ctx.message_id)])

    async def typed(self, ctx: ChatContext, session_id: str, text: str) -> Reply:
        """An answer to `AskText` from a form (Discord modal)."""
        user, lang, _ = await self.user(ctx)
        session = await self._own_session(user, lang, session_id)
        if isinstance(session, Reply):
            return session
        return await self._prompt_arrived(ctx, lang, session, text)

    async def music(self, ctx: ChatContext, prompt: str | None = None, *,
                    mux_target: str | None = None) -> Reply:
        """Music on its own (a /music command, or "Add music" on a result whose clip
        is `mux_target`): the mood screen, or straight to confirm with a prompt."""
        user, lang, _ = await self.user(ctx)
        data: dict[str, Any] = {"action": MUSIC, "options": {}, "source_message_id": ctx.message_id}
        if mux_target:
            data["mux_target"] = mux_target
        session = await self.sessions.create(
            user_id=user.id, platform=ctx.platform, chat_id=ctx.chat_id, chat_kind=ctx.chat_kind,
            step="music", data=data, awaiting="music_prompt",
        )
        if prompt:
            return await self._prompt_arrived(ctx, lang, session, prompt)
        screen = views.music(lang, session, self.models[MUSIC], bark=self.music_is_bark)
        return Reply([Send(screen, ctx.message_id, session_id=session.id)])

    async def glitch_with_clip(
        self, ctx: ChatContext, clip: Path, *, reply_to: str | None = None, start: str | None = None
    ) -> Reply:
        """`/glitch [START]` on a shared clip (or Discord's "Remix this clip"): it becomes
        the template clip, trimmed from START (default 0); the caller is asked for their image."""
        user, lang, _ = await self.user(ctx)
        try:
            stored, info = await self._take_video(clip, user.id)
            begin = self._clip_start(start, info.duration)
        except (MediaError, TimestampInvalid, TimestampOutOfRange) as exc:
            return self._error(ctx, lang, exc)
        session = await self.sessions.create(
            user_id=user.id, platform=ctx.platform, chat_id=ctx.chat_id, chat_kind=ctx.chat_kind,
            step="ask_image", data={"source_message_id": reply_to or ctx.message_id},
            awaiting="image",
        )
        try:
            trimmed = await self._trim_for_glitch(session.id, stored, begin)
        except MediaError as exc:  # nothing is charged yet: the session just ends here
            await self.sessions.save(session.evolve(awaiting=None))
            return self._error(ctx, lang, exc)
        session = await self.sessions.save(session.evolve(clip=str(trimmed), clip_duration=info.duration))
        last = await self.sessions.latest_with(user.id, "frame")
        screen = views.ask_image(lang, session, has_last_frame=last is not None and last.id != session.id)
        return Reply([Send(screen, ctx.message_id, session_id=session.id)])

    async def bind_message(self, session_id: str, message_id: str) -> None:
        """The adapter sent the session's studio message: later presses edit it."""
        async with self._lock(session_id):
            session = await self.sessions.get(session_id)
            if session is not None and session.message_id != message_id:
                await self.sessions.save(session.evolve(message_id=message_id))

    # --- presses -----------------------------------------------------------------
    async def press(self, ctx: ChatContext, data: str | None) -> Reply:
        """A button was pressed (callback data / custom id as encoded by core.screens)."""
        user, lang, _ = await self.user(ctx)
        decoded = decode_action(data)
        if decoded is None:
            return Reply([Alert(t(lang, "error.unknown_button"))])
        action, args = decoded
        try:
            if action.startswith("job."):
                return await self._job_press(ctx, user, lang, action, args)
            if action == "acct.lang":
                return await self.set_language(ctx, args[0] if args else "")
            if not action.startswith("st.") or not args:
                return Reply([Alert(t(lang, "error.unknown_button"))])
            async with self._lock(args[0]):
                session = await self._own_session(user, lang, args[0])
                if isinstance(session, Reply):
                    return session
                return await self._studio_press(ctx, user, lang, session, action, args[1:])
        except StaleSession:
            return Reply([Alert(t(lang, "error.already_done"))])
        except LokizError as exc:
            return Reply([Alert(t(lang, exc.key, **exc.params))])

    async def _own_session(self, user: User, lang: str, session_id: str) -> Session | Reply:
        session = await self.sessions.get(session_id)
        if session is None or session.expired or not _media_present(session):
            return Reply([Alert(t(lang, "error.session_expired"))])
        if session.user_id != user.id:
            return Reply([Alert(t(lang, "error.not_your_session"))])
        return session

    async def _studio_press(
        self, ctx: ChatContext, user: User, lang: str, session: Session, action: str, args: tuple[str, ...]
    ) -> Reply:
        if action == "st.at" or action == "st.scrub":
            tenths = _int(args, 0)
            if tenths is None:
                return Reply([Alert(t(lang, "error.unknown_button"))])
            at = tenths / 10 if action == "st.at" else session.get("at", 0.0) + tenths / 10
            return await self._show_frame(ctx, lang, session, at, send=False)
        if action == "st.tpl":
            session = await self.sessions.save(session.evolve(step="templates", action=TEMPLATE, awaiting=None))
            return self._edit(ctx, session, views.templates(lang, session, self.templates, self.models[TEMPLATE].price))
        if action == "st.pick":
            template = self.templates.get(args[0] if args else "")
            offered = {option.name for option in self.models[TEMPLATE].offered}
            options = {k: v for k, v in template.options.items() if k in offered}
            session = await self.sessions.save(
                session.evolve(step="options", action=TEMPLATE, template=template.id, prompt=None, options=options)
            )
            return self._edit(ctx, session, views.template_options(
                lang, session, self.models[TEMPLATE], template.text("name", lang)))
        if action == "st.custom":
            for_music = session.get("action") == MUSIC
            awaiting = "music_prompt" if for_music else "prompt"
            session = await self.sessions.save(session.evolve(step="ask_prompt", awaiting=awaiting))
            screen = views.ask_prompt(lang, session, for_music=for_music)
            return Reply([AskText(
                session.id, t(lang, "studio.prompt_title"), t(lang, "studio.prompt_label"),
                t(lang, "studio.prompt_placeholder"), MAX_PROMPT_CHARS, screen, session.message_id,
            )])
        if action == "st.opt":
            # Only what the options screen shows: crafted data cannot pick an unpriced option.
            name, index = (args + ("", ""))[:2]
            choosable = {option.name: option for option in self.models[TEMPLATE].offered}
            option = choosable.get(name)
            if session.step != "options" or option is None or not is_whole_number(index) \
                    or int(index) >= len(option.choices):
                return Reply([Alert(t(lang, "error.unknown_button"))])
            options = {**session.get("options", {}), name: option.choices[int(index)]}
            session = await self.sessions.save(session.evolve(options=options))
            return self._edit(ctx, session, views.template_options(
                lang, session, self.models[TEMPLATE], views.template_title(lang, session, self.templates)))
        if action == "st.next":
            return await self._confirm(ctx, user, lang, session)
        if action == "st.back":
            return await self._back(ctx, lang, session)
        if action == "st.glitch":
            session = await self.sessions.save(session.evolve(step="ask_clip", awaiting="clip", action=None))
            return self._edit(ctx, session, views.ask_clip(lang, session, self.limits.glitch_max_seconds))
        if action == "st.lastframe":
            last = await self.sessions.latest_with(user.id, "frame")
            if last is None or not Path(last.get("frame")).exists():
                return Reply([Alert(t(lang, "error.no_last_frame"))])
            return await self._image_arrived(ctx, lang, session, Path(last.get("frame")))
        if action == "st.mode":
            mode = {"animate": GLITCH_ANIMATE, "replace": GLITCH_REPLACE}.get(args[0] if args else "")
            if mode is None or not session.get("clip"):
                return Reply([Alert(t(lang, "error.unknown_button"))])
            session = await self.sessions.save(session.evolve(action=mode, awaiting=None))
            return await self._confirm(ctx, user, lang, session)
        if action == "st.music":
            session = await self.sessions.save(
                session.evolve(step="music", action=MUSIC, awaiting="music_prompt", options={})
            )
            return self._edit(ctx, session, views.music(lang, session, self.models[MUSIC], bark=self.music_is_bark))
        if action == "st.style":
            style = args[0] if args else ""
            if not self.music_is_bark or session.step != "music" or style not in ("sing", "speak"):
                return Reply([Alert(t(lang, "error.unknown_button"))])
            session = await self.sessions.save(session.evolve(options={"style": style}))
            return self._edit(ctx, session, views.music(lang, session, self.models[MUSIC], bark=True))
        if action == "st.mood":
            mood = args[0] if args else ""
            if mood not in MOOD_PROMPTS:
                return Reply([Alert(t(lang, "error.unknown_button"))])
            style = session.get("options", {}).get("style", "sing")
            prompt = MOOD_LYRICS[mood] if self.music_is_bark and style == "sing" else MOOD_PROMPTS[mood]
            session = await self.sessions.save(session.evolve(prompt=prompt, awaiting=None))
            return await self._confirm(ctx, user, lang, session)
        if action == "st.go":
            return await self._submit(ctx, user, lang, session)
        if action == "st.cancel":
            session = await self.sessions.save(session.evolve(step="closed", awaiting=None))
            return self._edit(ctx, session, views.closed(lang, session))
        return Reply([Alert(t(lang, "error.unknown_button"))])

    # --- steps ---------------------------------------------------------------------
    async def _show_sheet(self, ctx: ChatContext, lang: str, session: Session, reply: Reply) -> Reply:
        sheet = await contact_sheet(Path(session.get("video")), 9,
                                    self.media.session_dir(session.id) / "sheet.jpg")
        session = await self.sessions.save(session.evolve(step="sheet", awaiting="time"))
        screen = views.contact_sheet(lang, session, sheet.path, list(sheet.times))
        return reply.add(Send(screen, ctx.message_id, session_id=session.id))

    async def _show_frame(self, ctx: ChatContext, lang: str, session: Session, at: float, *, send: bool) -> Reply:
        duration = float(session.get("duration", 0.0))
        at = round(min(max(at, 0.0), duration), 1)
        out = self.media.session_dir(session.id) / f"frame-{int(at * 10)}.jpg"
        if not out.exists():
            await capture_frame(Path(session.get("video")), at, out)
        session = await self.sessions.save(
            session.evolve(step="frame", at=at, frame=str(out), awaiting=None, action=None)
        )
        screen = views.frame(lang, session)
        if send or session.message_id is None:
            return Reply([Send(screen, ctx.message_id, session_id=session.id)])
        return Reply([Edit(screen, session.message_id, new_media=True)])

    async def _typed_time(self, ctx: ChatContext, lang: str, session: Session, text: str) -> Reply:
        try:
            at = check_in_range(parse_timestamp(text), float(session.get("duration", 0.0)))
        except (TimestampInvalid, TimestampOutOfRange) as exc:
            return self._error(ctx, lang, exc)
        async with self._lock(session.id):
            fresh = await self.sessions.get(session.id) or session
            return await self._show_frame(ctx, lang, fresh, at, send=True)

    def _clip_start(self, text: str | None, duration: float) -> float:
        """Where a glitch template clip starts: the given time, or 0."""
        if not text or not text.strip():
            return 0.0
        return check_in_range(parse_timestamp(text), duration)

    async def _trim_for_glitch(self, session_id: str, clip: Path, start: float) -> Path:
        """At most GLITCH_MAX_SECONDS of the clip from `start`, ≤ 1280 px: what the model gets."""
        return await trim_clip(clip, start, self.limits.glitch_max_seconds,
                               self.media.session_dir(session_id) / "clip.mp4",
                               max_side=GLITCH_MAX_SIDE)

    async def _clip_arrived(
        self, ctx: ChatContext, lang: str, session: Session, clip: Path, duration: float,
        caption: str | None,
    ) -> Reply:
        try:
            start = self._clip_start(caption, duration)
            trimmed = await self._trim_for_glitch(session.id, clip, start)
        except MediaError as exc:
            return self._error(ctx, lang, exc)
        async with self._lock(session.id):
            fresh = await self.sessions.get(session.id) or session
            fresh = await self.sessions.save(
                fresh.evolve(step="modes", clip=str(trimmed), clip_duration=duration, awaiting=None)
            )
        return Reply([Send(views.glitch_modes(lang, fresh, self._prices()), ctx.message_id, session_id=fresh.id)])

    async def _image_arrived(self, ctx: ChatContext, lang: str, session: Session, image: Path) -> Reply:
        fresh = await self.sessions.get(session.id) or session
        fresh = await self.sessions.save(fresh.evolve(step="modes", image=str(image), awaiting=None))
        screen = views.glitch_modes(lang, fresh, self._prices())
        if ctx.message_id and fresh.message_id and ctx.message_id == fresh.message_id:
            return Reply([Edit(screen, fresh.message_id, new_media=True)])
        return Reply([Send(screen, ctx.message_id, session_id=fresh.id)])

    async def _prompt_arrived(self, ctx: ChatContext, lang: str, session: Session, text: str) -> Reply:
        try:
            prompt = clean_prompt(text)
        except PromptInvalid as exc:
            return self._error(ctx, lang, exc)
        async with self._lock(session.id):
            fresh = await self.sessions.get(session.id) or session
            for_music = fresh.awaiting == "music_prompt" or fresh.get("action") == MUSIC
            if for_music:
                fresh = await self.sessions.save(fresh.evolve(prompt=prompt, action=MUSIC, awaiting=None))
                user = await self.ledger.users.get(fresh.user_id)
                return await self._confirm(ctx, user, lang, fresh, send=True)
            fresh = await self.sessions.save(
                fresh.evolve(step="options", action=TEMPLATE, template=None, prompt=prompt,
                             awaiting=None, options=fresh.get("options", {}))
            )
            screen = views.template_options(lang, fresh, self.models[TEMPLATE], t(lang, "job.what.custom"))
            return Reply([Send(screen, ctx.message_id, session_id=fresh.id)])

    async def _confirm(self, ctx: ChatContext, user: User, lang: str, session: Session, *, send: bool = False) -> Reply:
        action = session.get("action")
        if action not in self.models:
            return await self._back(ctx, lang, session)
        spec = self.models[action]
        session = await self.sessions.save(session.evolve(step="confirm", awaiting=None))
        balance = await self.ledger.balance(user.id)
        what = views.describe_choice(lang, action, session, self.templates)
        screen = views.confirm(lang, session, what=what, details=self._details(lang, session, spec),
                               price=spec.price_for(session.get("options", {})), balance=balance)
        if send or session.message_id is None:
            return Reply([Send(screen, ctx.message_id, session_id=session.id)])
        return self._edit(ctx, session, screen)

    def _details(self, lang: str, session: Session, spec: ModelSpec) -> str:
        if spec.action == TEMPLATE:
            options = spec.resolve_options(session.get("options", {}))
            prompt = session.get("prompt")
            parts = [t(lang, "time.seconds", n=options["duration"]), options["aspect_ratio"],
                     options["resolution"]]
            if prompt:
                parts.append(f"“{_short(prompt)}”")
            return " · ".join(parts)
        if spec.action == MUSIC:
            return f"“{_short(session.get('prompt', ''))}”"
        return t(lang, "studio.glitch_details", seconds=int(self.limits.glitch_max_seconds))

    async def _back(self, ctx: ChatContext, lang: str, session: Session) -> Reply:
        if session.get("frame") and session.get("video"):
            session = await self.sessions.save(session.evolve(step="frame", awaiting=None, action=None))
            return self._edit(ctx, session, views.frame(lang, session))
        if session.get("clip"):
            session = await self.sessions.save(session.evolve(step="ask_image", awaiting="image"))
            return self._edit(ctx, session, views.ask_image(lang, session, has_last_frame=False))
        session = await self.sessions.save(session.evolve(step="closed", awaiting=None))
        return self._edit(ctx, session, views.closed(lang, session))

    async def _submit(self, ctx: ChatContext, user: User, lang: str, session: Session) -> Reply:
        if session.step != "confirm":
            return Reply([Alert(t(lang, "error.already_done"))])
        request = self._request(session)
        # The charge is keyed on the pressed message and the screen's version, so a press
        # handled twice (two instances) charges once even past the session's own check.
        pressed = ctx.message_id or session.message_id or "-"
        charge_key = f"press:{ctx.platform}:{ctx.chat_id}:{pressed}:{session.id}.{session.version}"
        # Claim the confirm step first: a double press or a second instance loses here.
        claimed = await self.sessions.save(session.evolve(step="submitted"))
        try:
            job = await self.engine.submit(
                user_id=user.id, platform=ctx.platform, chat_id=ctx.chat_id, language=lang,
                request=request, reply_to_message_id=session.get("source_message_id"),
                session_id=session.id, charge_key=charge_key,
            )
        except LokizError as exc:
            reopened = await self.sessions.save(claimed.evolve(step="confirm"))
            reply = Reply([Alert(t(lang, exc.key, **exc.params))])
            if isinstance(exc, InsufficientCredits):  # show the shortfall on the confirm screen
                reply.outs.extend((await self._confirm(ctx, user, lang, reopened)).outs)
            return reply
        claimed = await self.sessions.save(claimed.evolve(last_job=job.id))
        return self._edit(ctx, claimed, views.started(lang, claimed, job.id))

    def _request(self, session: Session) -> JobRequest:
        action = session.get("action")
        seed = random.randrange(1, 2**31)
        if action == TEMPLATE:
            template_id = session.get("template")
            prompt = session.get("prompt")
            look = None
            if template_id:
                template = self.templates.get(template_id)
                prompt = template.prompt["en"]
                look = template.look
            return JobRequest(TEMPLATE, prompt=prompt or "", image=session.get("frame"),
                              template=template_id, look=look, options=session.get("options", {}),
                              seed=seed)
        if action in (GLITCH_ANIMATE, GLITCH_REPLACE):
            image = session.get("image") or session.get("frame")
            return JobRequest(action, image=image, clip=session.get("clip"), seed=seed)
        return JobRequest(MUSIC, prompt=session.get("prompt", ""), options=session.get("options", {}),
                          seed=seed, clip=session.get("mux_target"))

    # --- result buttons -------------------------------------------------------------
    async def _job_press(self, ctx: ChatContext, user: User, lang: str, action: str, args: tuple[str, ...]) -> Reply:
        job = await self.jobs.get(args[0]) if args else None
        if job is None:
            return Reply([Alert(t(lang, "error.job_not_found"))])
        if action == "job.like":
            likes = await self.jobs.like(job.id, user.id)
            reply = Reply([Alert(t(lang, "job.liked", n=likes))])
            if ctx.message_id:  # the count shows on the result's own 👍 button
                screen = job_screens.result_screen(
                    job, job_screens.describe(job, self.templates, job.language),
                    local_preview=job.backend == "local", likes=likes,
                    again=await self.ledger.presses(self._again_prefix(ctx, job)),
                )
                reply.add(Edit(screen, ctx.message_id, buttons_only=True))
            return reply
        if action == "job.remix":
            if not job.output_path or not Path(job.output_path).exists():
                return Reply([Alert(t(lang, "error.session_expired"))])
            copy = self.media.temp(".mp4")
            copy.write_bytes(Path(job.output_path).read_bytes())
            return await self.glitch_with_clip(ctx, copy, reply_to=ctx.message_id)
        if job.user_id != user.id:
            return Reply([Alert(t(lang, "error.not_your_session"))])
        if action == "job.cancel":
            refunded = await self.engine.cancel(job.id, user_id=user.id)
            return Reply([Alert(t(lang, "job.canceled", n=refunded))])
        if action == "job.again":
            return await self._again(ctx, user, lang, job, args[1] if len(args) > 1 else "0")
        if action == "job.music":
            if job.output_path is None or not Path(job.output_path).exists():
                return Reply([Alert(t(lang, "error.session_expired"))])
            return await self.music(ctx, mux_target=job.output_path)
        if action == "job.mux":
            return await self._add_to_clip(ctx, user, lang, job)
        return Reply([Alert(t(lang, "error.unknown_button"))])

    async def _again(self, ctx: ChatContext, user: User, lang: str, job: Job, version: str) -> Reply:
        """Run a result's request again: once per version of the result's buttons.

        Presses of the same screen share one charge key (a double press makes one job);
        the first press moves the buttons to the next version, where a press is a new job.
        """
        prefix = self._again_prefix(ctx, job)
        current = await self.ledger.presses(prefix)
        if not is_whole_number(version) or int(version) != current:
            return Reply([Alert(t(lang, "error.already_done"))])
        request = JobRequest.from_json({**job.request.to_json(), "seed": random.randrange(1, 2**31)})
        again = await self.engine.submit(
            user_id=user.id, platform=job.platform, chat_id=ctx.chat_id, language=lang,
            request=request, reply_to_message_id=ctx.message_id, session_id=job.session_id,
            charge_key=prefix + version,
        )
        reply = Reply([Alert(t(lang, "job.again_started", id=again.id, price=again.price))])
        if ctx.message_id:
            screen = job_screens.result_screen(
                job, job_screens.describe(job, self.templates, job.language),
                local_preview=job.backend == "local", likes=job.likes, again=current + 1,
            )
            reply.add(Edit(screen, ctx.message_id, buttons_only=True))
        return reply

    @staticmethod
    def _again_prefix(ctx: ChatContext, job: Job) -> str:
        """Charge keys of Again presses on one result message (platform, chat, message)."""
        return f"press:{ctx.platform}:{ctx.chat_id}:{ctx.message_id or job.id}:again:"

    async def _add_to_clip(self, ctx: ChatContext, user: User, lang: str, music_job: Job) -> Reply:
        """Put a music result under the user's clip (free): the clip the music was
        made for, else their latest finished video in this chat, else their last source video."""
        if music_job.status not in (SUCCEEDED, DELIVERED) or not music_job.output_path:
            return Reply([Alert(t(lang, "error.job_not_ready"))])
        video = await self._clip_for_music(user, ctx, music_job)
        if video is None:
            return Reply([Alert(t(lang, "error.no_clip_for_music"))])
        out = self.media.path("mux", f"{music_job.id}-{video.stem[:16]}.mp4")
        muxed = await mux_music(video, Path(music_job.output_path), out)
        info = await probe(muxed)
        media = OutputMedia(path=muxed, kind="video", duration=info.duration, width=info.width,
                            height=info.height)
        screen = Screen(t(lang, "studio.muxed", id=music_job.id))
        return Reply([Alert(t(lang, "studio.muxing")), SendMedia(media, screen, ctx.message_id)])

    async def _clip_for_music(self, user: User, ctx: ChatContext, music_job: Job) -> Path | None:
        if music_job.request.clip and Path(music_job.request.clip).exists():
            return Path(music_job.request.clip)
        for job in await self.jobs.for_user(user.id, limit=20):
            if job.action != MUSIC and job.status == DELIVERED and job.chat_id == ctx.chat_id \
                    and job.output_path and Path(job.output_path).exists():
                return Path(job.output_path)
        latest = await self.sessions.latest_with(user.id, "video")
        if latest is not None and Path(latest.get("video")).exists():
            return Path(latest.get("video"))
        return None

    # --- account -----------------------------------------------------------------------
    async def set_language(self, ctx: ChatContext, code: str) -> Reply:
        user, lang, _ = await self.user(ctx)
        if code not in ("en", "ko"):
            buttons = ((
                Button("English", "acct.lang", ("en",)),
                Button("한국어", "acct.lang", ("ko",)),
            ),)
            return Reply([Send(Screen(t(lang, "account.choose_language"), buttons, ephemeral=True), ctx.message_id)])
        await self.ledger.users.set_language(user.id, code)
        return Reply([Send(Screen(t(code, "account.language_set"), ephemeral=True), ctx.message_id)])

    # --- helpers ------------------------------------------------------------------------
    def _edit(self, ctx: ChatContext, session: Session, screen: Screen) -> Reply:
        target = session.message_id or ctx.message_id
        if target is None:
            return Reply([Send(screen, None, session_id=session.id)])
        return Reply([Edit(screen, target)])

    def _error(self, ctx: ChatContext, lang: str, exc: LokizError) -> Reply:
        return Reply([Send(Screen(t(lang, exc.key, **exc.params)), ctx.message_id)])

    def _prices(self) -> dict[str, int]:  # base prices; surcharged options show their own
        return {action: spec.price for action, spec in self.models.items()}

    def _lock(self, session_id: str) -> asyncio.Lock:
        if len(self._locks) > 10_000:
            self._locks = {k: v for k, v in self._locks.items() if v.locked()}
        return self._locks.setdefault(session_id, asyncio.Lock())


def clean_prompt(text: str) -> str:
    """A prompt as the model should get it; PromptInvalid if empty or too long."""
    cleaned = "".join(
        " " if unicodedata.category(ch) in ("Cc", "Cf") and ch not in "\n" else ch for ch in text
    )
    cleaned = " ".join(cleaned.split())
    if not cleaned:
        raise PromptInvalid("empty prompt", reason="empty", limit=MAX_PROMPT_CHARS)
    if len(cleaned) > MAX_PROMPT_CHARS:
        raise PromptInvalid("prompt too long", reason="too_long", limit=MAX_PROMPT_CHARS,
                            length=len(cleaned))
    return cleaned


def _media_present(session: Session) -> bool:
    """Whether the files a session works on are still there (media is cleaned after its TTL)."""
    return all(Path(session.get(key)).exists() for key in ("video", "clip", "image")
               if session.get(key))


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _int(args: tuple[str, ...], index: int) -> int | None:
    try:
        value = int(args[index])
    except (IndexError, ValueError):
        return None
    return value if abs(value) <= 10 * 24 * 3600 else None

