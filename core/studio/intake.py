"""What users send into the studio: videos, photos, typed text, shared clips, music asks.

Where a session waits for input (`Awaiting`), the input goes to it; otherwise a
video starts a new session at its frame (or its contact sheet).
"""

from __future__ import annotations

from pathlib import Path

from core.catalogue import MUSIC
from core.errors import LokizError, MediaError, NotAVideo, TimestampInvalid, TimestampOutOfRange
from core.i18n import t
from core.media.capture import capture_frame
from core.media.intake import accept_video, is_animated_gif
from core.media.probe import VideoInfo, probe_image
from core.media.timestamps import check_in_range, parse_timestamp
from core.screens import Screen
from core.sessions import Awaiting, Session, SessionData, Step
from core.studio import views
from core.studio.people import Caller
from core.studio.replies import ChatContext, Reply, Send
from core.studio.steps import Steps
from core.studio.workshop import Workshop, error, refuse, send


class Intake:
    def __init__(self, shop: Workshop, steps: Steps) -> None:
        self.shop = shop
        self.steps = steps

    async def waiting(self, ctx: ChatContext, who: Caller) -> Session | None:
        """The caller's session in this chat that waits for input, if any."""
        return await self.shop.sessions.latest(
            user_id=who.user.id, platform=ctx.platform, chat_id=ctx.chat_id, awaiting=True)

    async def video(self, ctx: ChatContext, who: Caller, path: Path, caption: str | None = None) -> Reply:
        """A video arrived (downloaded to `path`), maybe with a time in its caption."""
        shop, lang = self.shop, who.lang
        try:
            stored, info = await self.take_video(path, who.user.id)
        except MediaError as exc:
            return error(ctx, lang, exc)
        waiting = await self.waiting(ctx, who)
        if waiting is not None and waiting.awaiting == Awaiting.CLIP:
            return await self.steps.clip_arrived(ctx, lang, waiting, stored, info.duration, caption)
        if waiting is not None and waiting.awaiting == Awaiting.IMAGE:
            at = self.caption_time(caption, info.duration)
            frame = await capture_frame(stored, at if isinstance(at, float) else 0.0,
                                        shop.media.session_dir(waiting.id) / "image.jpg")
            await shop.media.share(frame)
            return await self.steps.image_arrived(ctx, lang, waiting, frame)
        session = await shop.sessions.create(
            user_id=who.user.id, platform=ctx.platform, chat_id=ctx.chat_id, chat_kind=ctx.chat_kind,
            step=Step.SHEET, data=SessionData(video=str(stored), duration=info.duration,
                                              source_message_id=ctx.message_id),
        )
        at = self.caption_time(caption, info.duration)
        if isinstance(at, float):
            return await self.steps.show_frame(ctx, lang, session, at, send_new=True)
        reply = Reply()
        if isinstance(at, LokizError):
            reply.add(Send(Screen(t(lang, at.key, **at.params)), ctx.message_id))
        return await self.steps.show_sheet(ctx, lang, session, reply)

    async def take_video(self, path: Path, owner: int) -> tuple[Path, VideoInfo]:
        """Keep a downloaded video under its content address and check it (MediaError if bad,
        or over the owner's media quota); GIF / Motion-JPEG clips come back as MP4."""
        stored = await self.shop.media.keep(path, owner=owner)
        try:
            return await accept_video(stored, max_seconds=self.shop.limits.max_video_seconds)
        except MediaError:
            await self.shop.media.discard(stored, owner=owner)
            raise

    def caption_time(self, caption: str | None, duration: float) -> float | LokizError | None:
        if not caption or not caption.strip():
            return None
        try:
            return check_in_range(parse_timestamp(caption), duration)
        except (TimestampInvalid, TimestampOutOfRange) as exc:
            return exc

    async def photo(self, ctx: ChatContext, who: Caller, path: Path) -> Reply:
        """A photo arrived: the user's image for a glitch that waits for one."""
        if await is_animated_gif(path):  # a GIF clip is a video on every platform
            return await self.video(ctx, who, path)
        waiting = await self.waiting(ctx, who)
        try:
            stored = await self.shop.media.keep(path, owner=who.user.id)
            await probe_image(stored)
        except MediaError as exc:
            path.unlink(missing_ok=True)
            return error(ctx, who.lang, exc)
        if waiting is None or waiting.awaiting != Awaiting.IMAGE:
            if ctx.chat_kind == "group":
                return Reply()  # a photo in a group that nobody asked for is not ours
            return Reply([Send(Screen(t(who.lang, "studio.photo_without_clip")), ctx.message_id)])
        return await self.steps.image_arrived(ctx, who.lang, waiting, stored)

    async def text(self, ctx: ChatContext, who: Caller, text: str) -> Reply:
        """Typed text: a time, a prompt, or chatter (answered with a hint in private)."""
        waiting = await self.waiting(ctx, who)
        if waiting is not None and waiting.awaiting in (Awaiting.PROMPT, Awaiting.MUSIC_PROMPT):
            return await self.steps.prompt_arrived(ctx, who, waiting, text)
        if waiting is not None and waiting.awaiting == Awaiting.TIME:
            return await self.steps.typed_time(ctx, who.lang, waiting, text)
        if ctx.chat_kind == "group":
            return Reply()
        latest = await self.shop.sessions.latest(user_id=who.user.id, platform=ctx.platform, chat_id=ctx.chat_id)
        if latest is not None and latest.data.video:
            try:
                parse_timestamp(text)
            except TimestampInvalid:
                pass
            else:
                return await self.steps.typed_time(ctx, who.lang, latest, text)
        return Reply([Send(Screen(t(who.lang, "studio.hint")), ctx.message_id)])

    async def form(self, ctx: ChatContext, who: Caller, session_id: str, text: str | None,
                   file: Path | None, is_video: bool) -> Reply:
        """An answer to a form: the prompt `AskText` asked for, or an uploaded image or clip."""
        session = await self.shop.own_session(who.user, who.lang, session_id)
        if isinstance(session, Reply):
            return session
        if file is not None:
            return await self.upload(ctx, who, session, file, is_video)
        return await self.steps.prompt_arrived(ctx, who, session, text or "")

    async def upload(self, ctx: ChatContext, who: Caller, session: Session, file: Path,
                     is_video: bool) -> Reply:
        """A file uploaded through a form for `session`: its glitch clip, or the user's image
        (a video's first frame will do)."""
        lang = who.lang
        if session.awaiting not in (Awaiting.CLIP, Awaiting.IMAGE):
            file.unlink(missing_ok=True)
            return refuse(lang, "error.already_done")
        try:
            if session.awaiting == Awaiting.CLIP:
                if not is_video:
                    raise NotAVideo("an image where a clip was asked for")
                stored, info = await self.take_video(file, who.user.id)
                return await self.steps.clip_arrived(ctx, lang, session, stored, info.duration, None)
            if is_video or await is_animated_gif(file):
                stored, _ = await self.take_video(file, who.user.id)
                image = await capture_frame(stored, 0.0, self.shop.media.session_dir(session.id) / "image.jpg")
                await self.shop.media.share(image)
            else:
                image = await self.shop.media.keep(file, owner=who.user.id)
                await probe_image(image)
        except MediaError as exc:
            file.unlink(missing_ok=True)
            return error(ctx, lang, exc)
        return await self.steps.image_arrived(ctx, lang, session, image)

    async def music(self, ctx: ChatContext, who: Caller, prompt: str | None = None, *,
                    mux_target: str | None = None) -> Reply:
        """Music on its own (a /music command, or "Add music" on a result whose clip
        is `mux_target`): the mood screen, or straight to confirm with a prompt."""
        session = await self.shop.sessions.create(
            user_id=who.user.id, platform=ctx.platform, chat_id=ctx.chat_id, chat_kind=ctx.chat_kind,
            step=Step.MUSIC, awaiting=Awaiting.MUSIC_PROMPT,
            data=SessionData(action=MUSIC, source_message_id=ctx.message_id, mux_target=mux_target),
        )
        if prompt:
            return await self.steps.prompt_arrived(ctx, who, session, prompt)
        screen = views.music(who.lang, session, self.shop.models[MUSIC], bark=self.shop.music_is_bark)
        return send(ctx, session, screen)

    async def clip(self, ctx: ChatContext, who: Caller, clip: Path, *, reply_to: str | None = None,
                   start: str | None = None) -> Reply:
        """`/glitch [START]` on a shared clip (or "Remix this clip"): it becomes the template
        clip, trimmed from START (default 0); the caller is asked for their image."""
        shop = self.shop
        try:
            stored, info = await self.take_video(clip, who.user.id)
            begin = self.steps.clip_start(start, info.duration)
        except (MediaError, TimestampInvalid, TimestampOutOfRange) as exc:
            return error(ctx, who.lang, exc)
        session = await shop.sessions.create(
            user_id=who.user.id, platform=ctx.platform, chat_id=ctx.chat_id, chat_kind=ctx.chat_kind,
            step=Step.ASK_IMAGE, data=SessionData(source_message_id=reply_to or ctx.message_id),
            awaiting=Awaiting.IMAGE,
        )
        try:
            trimmed = await self.steps.trim_for_glitch(session.id, stored, begin)
        except MediaError as exc:  # nothing is charged yet: the session just ends here
            await shop.sessions.save(session.evolve(awaiting=Awaiting.NOTHING))
            return error(ctx, who.lang, exc)
        session = await shop.sessions.save(session.evolve(clip=str(trimmed), clip_duration=info.duration))
        last = await shop.sessions.latest_with(who.user.id, "frame")
        screen = views.ask_image(who.lang, session, has_last_frame=last is not None and last.id != session.id)
        return send(ctx, session, screen)
