"""The studio's steps (SPEC §2): frame, templates, options, glitch, music, confirm, submit.

Each press handler takes the caller, the session (already checked: theirs, alive,
locked) and its typed action, saves the next step and returns what to show.
"""

from __future__ import annotations

from pathlib import Path

from core import actions as act
from core.catalogue import (
    GLITCH_ANIMATE,
    GLITCH_REPLACE,
    MAX_PROMPT_CHARS,
    MUSIC,
    TEMPLATE,
    ModelSpec,
)
from core.errors import (
    InsufficientCredits,
    LokizError,
    MediaError,
    PromptInvalid,
    TimestampInvalid,
    TimestampOutOfRange,
)
from core.i18n import t
from core.media.capture import capture_frame
from core.media.edit import GLITCH_MAX_SIDE, trim_clip
from core.media.sheet import contact_sheet
from core.media.timestamps import check_in_range, parse_timestamp
from core.sessions import Awaiting, Session, Step
from core.studio import views
from core.studio.people import Caller
from core.studio.replies import Alert, AskText, ChatContext, Edit, Reply, Send
from core.studio.requests import clean_prompt, preset_options, session_request
from core.studio.workshop import Workshop, edit, error, refuse, send

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
GLITCH_MODES = {"animate": GLITCH_ANIMATE, "replace": GLITCH_REPLACE}


class Steps:
    def __init__(self, shop: Workshop) -> None:
        self.shop = shop

    # --- frame ---------------------------------------------------------------------------
    async def show_sheet(self, ctx: ChatContext, lang: str, session: Session, reply: Reply) -> Reply:
        shop = self.shop
        assert session.data.video is not None
        sheet = await contact_sheet(Path(session.data.video), 9, shop.media.session_dir(session.id) / "sheet.jpg")
        session = await shop.sessions.save(session.evolve(step=Step.SHEET, awaiting=Awaiting.TIME))
        screen = views.contact_sheet(lang, session, sheet.path, list(sheet.times))
        return reply.add(Send(screen, ctx.message_id, session_id=session.id))

    async def show_frame(self, ctx: ChatContext, lang: str, session: Session, at: float, *, send_new: bool) -> Reply:
        shop, data = self.shop, session.data
        at = round(min(max(at, 0.0), float(data.duration or 0.0)), 1)
        out = shop.media.session_dir(session.id) / f"frame-{int(at * 10)}.jpg"
        if not out.exists():
            assert data.video is not None
            await capture_frame(Path(data.video), at, out)
            await shop.media.share(out)  # a press on another instance shows it too
        session = await shop.sessions.save(
            session.evolve(step=Step.FRAME, at=at, frame=str(out), awaiting=Awaiting.NOTHING, action=None)
        )
        screen = views.frame(lang, session)
        if send_new or session.message_id is None:
            return send(ctx, session, screen)
        return Reply([Edit(screen, session.message_id, new_media=True)])

    async def typed_time(self, ctx: ChatContext, lang: str, session: Session, text: str) -> Reply:
        try:
            at = check_in_range(parse_timestamp(text), float(session.data.duration or 0.0))
        except (TimestampInvalid, TimestampOutOfRange) as exc:
            return error(ctx, lang, exc)
        async with self.shop.lock(session.id):
            fresh = await self.shop.sessions.get(session.id) or session
            return await self.show_frame(ctx, lang, fresh, at, send_new=True)

    async def seek(self, ctx: ChatContext, who: Caller, session: Session, action: act.SeekFrame) -> Reply:
        return await self.show_frame(ctx, who.lang, session, action.tenths / 10, send_new=False)

    async def scrub(self, ctx: ChatContext, who: Caller, session: Session, action: act.Scrub) -> Reply:
        at = (session.data.at or 0.0) + action.tenths / 10
        return await self.show_frame(ctx, who.lang, session, at, send_new=False)

    # --- template --------------------------------------------------------------------------
    async def templates(self, ctx: ChatContext, who: Caller, session: Session, action: act.OpenTemplates) -> Reply:
        shop = self.shop
        session = await shop.sessions.save(
            session.evolve(step=Step.TEMPLATES, action=TEMPLATE, awaiting=Awaiting.NOTHING))
        return edit(ctx, session, views.templates(who.lang, session, shop.templates, shop.models[TEMPLATE].price))

    async def pick(self, ctx: ChatContext, who: Caller, session: Session, action: act.PickTemplate) -> Reply:
        shop = self.shop
        template = shop.templates.get(action.template)
        session = await shop.sessions.save(session.evolve(
            step=Step.OPTIONS, action=TEMPLATE, template=template.id, prompt=None,
            options=preset_options(template, shop.models[TEMPLATE]),
        ))
        return edit(ctx, session, views.template_options(
            who.lang, session, shop.models[TEMPLATE], template.text("name", who.lang)))

    async def custom(self, ctx: ChatContext, who: Caller, session: Session, action: act.CustomPrompt) -> Reply:
        lang = who.lang
        for_music = session.data.action == MUSIC
        awaiting = Awaiting.MUSIC_PROMPT if for_music else Awaiting.PROMPT
        session = await self.shop.sessions.save(session.evolve(step=Step.ASK_PROMPT, awaiting=awaiting))
        screen = views.ask_prompt(lang, session, for_music=for_music)
        return Reply([AskText(
            session.id, t(lang, "studio.prompt_title"), t(lang, "studio.prompt_label"),
            t(lang, "studio.prompt_placeholder"), MAX_PROMPT_CHARS, screen, session.message_id,
        )])

    async def option(self, ctx: ChatContext, who: Caller, session: Session, action: act.SetOption) -> Reply:
        shop = self.shop
        # Only what the options screen shows: crafted data cannot pick an unpriced option.
        option = {option.name: option for option in shop.models[TEMPLATE].offered}.get(action.name)
        if session.step != Step.OPTIONS or option is None or not 0 <= action.index < len(option.choices):
            return refuse(who.lang)
        options = {**session.data.options, action.name: option.choices[action.index]}
        session = await shop.sessions.save(session.evolve(options=options))
        return edit(ctx, session, views.template_options(
            who.lang, session, shop.models[TEMPLATE], views.template_title(who.lang, session, shop.templates)))

    async def prompt_arrived(self, ctx: ChatContext, who: Caller, session: Session, text: str) -> Reply:
        shop, lang = self.shop, who.lang
        try:
            prompt = clean_prompt(text)
        except PromptInvalid as exc:
            return error(ctx, lang, exc)
        async with shop.lock(session.id):
            fresh = await shop.sessions.get(session.id) or session
            if fresh.awaiting == Awaiting.MUSIC_PROMPT or fresh.data.action == MUSIC:
                fresh = await shop.sessions.save(
                    fresh.evolve(prompt=prompt, action=MUSIC, awaiting=Awaiting.NOTHING))
                return await self.confirm(ctx, who, fresh, send_new=True)
            fresh = await shop.sessions.save(fresh.evolve(
                step=Step.OPTIONS, action=TEMPLATE, template=None, prompt=prompt, awaiting=Awaiting.NOTHING,
            ))
            screen = views.template_options(lang, fresh, shop.models[TEMPLATE], t(lang, "job.what.custom"))
            return send(ctx, fresh, screen)

    # --- glitch ----------------------------------------------------------------------------
    async def glitch(self, ctx: ChatContext, who: Caller, session: Session, action: act.OpenGlitch) -> Reply:
        session = await self.shop.sessions.save(
            session.evolve(step=Step.ASK_CLIP, awaiting=Awaiting.CLIP, action=None))
        return edit(ctx, session, views.ask_clip(who.lang, session, self.shop.limits.glitch_max_seconds))

    async def last_frame(self, ctx: ChatContext, who: Caller, session: Session, action: act.UseLastFrame) -> Reply:
        last = await self.shop.sessions.latest_with(who.user.id, "frame")
        if last is None or last.data.frame is None or not Path(last.data.frame).exists():
            return refuse(who.lang, "error.no_last_frame")
        return await self.image_arrived(ctx, who.lang, session, Path(last.data.frame))

    async def mode(self, ctx: ChatContext, who: Caller, session: Session, action: act.PickMode) -> Reply:
        mode = GLITCH_MODES.get(action.mode)
        if mode is None or not session.data.clip:
            return refuse(who.lang)
        session = await self.shop.sessions.save(session.evolve(action=mode, awaiting=Awaiting.NOTHING))
        return await self.confirm(ctx, who, session)

    def clip_start(self, text: str | None, duration: float) -> float:
        """Where a glitch template clip starts: the given time, or 0."""
        if not text or not text.strip():
            return 0.0
        return check_in_range(parse_timestamp(text), duration)

    async def trim_for_glitch(self, session_id: str, clip: Path, start: float) -> Path:
        """At most GLITCH_MAX_SECONDS of the clip from `start`, ≤ 1280 px: what the model gets."""
        trimmed = await trim_clip(clip, start, self.shop.limits.glitch_max_seconds,
                                  self.shop.media.session_dir(session_id) / "clip.mp4",
                                  max_side=GLITCH_MAX_SIDE)
        await self.shop.media.share(trimmed)  # the job may run on another instance
        return trimmed

    async def clip_arrived(self, ctx: ChatContext, lang: str, session: Session, clip: Path, duration: float,
                           caption: str | None) -> Reply:
        shop = self.shop
        try:
            start = self.clip_start(caption, duration)
            trimmed = await self.trim_for_glitch(session.id, clip, start)
        except MediaError as exc:
            return error(ctx, lang, exc)
        async with shop.lock(session.id):
            fresh = await shop.sessions.get(session.id) or session
            fresh = await shop.sessions.save(fresh.evolve(
                step=Step.MODES, clip=str(trimmed), clip_duration=duration, awaiting=Awaiting.NOTHING))
        return send(ctx, fresh, views.glitch_modes(lang, fresh, shop.prices()))

    async def image_arrived(self, ctx: ChatContext, lang: str, session: Session, image: Path) -> Reply:
        shop = self.shop
        fresh = await shop.sessions.get(session.id) or session
        fresh = await shop.sessions.save(fresh.evolve(step=Step.MODES, image=str(image), awaiting=Awaiting.NOTHING))
        screen = views.glitch_modes(lang, fresh, shop.prices())
        if ctx.message_id and fresh.message_id and ctx.message_id == fresh.message_id:
            return Reply([Edit(screen, fresh.message_id, new_media=True)])
        return send(ctx, fresh, screen)

    # --- music -----------------------------------------------------------------------------
    async def music(self, ctx: ChatContext, who: Caller, session: Session, action: act.OpenMusic) -> Reply:
        shop = self.shop
        session = await shop.sessions.save(
            session.evolve(step=Step.MUSIC, action=MUSIC, awaiting=Awaiting.MUSIC_PROMPT, options={}))
        return edit(ctx, session, views.music(who.lang, session, shop.models[MUSIC], bark=shop.music_is_bark))

    async def style(self, ctx: ChatContext, who: Caller, session: Session, action: act.PickStyle) -> Reply:
        if not self.shop.music_is_bark or session.step != Step.MUSIC or action.style not in ("sing", "speak"):
            return refuse(who.lang)
        session = await self.shop.sessions.save(session.evolve(options={"style": action.style}))
        return edit(ctx, session, views.music(who.lang, session, self.shop.models[MUSIC], bark=True))

    async def mood(self, ctx: ChatContext, who: Caller, session: Session, action: act.PickMood) -> Reply:
        if action.mood not in MOOD_PROMPTS:
            return refuse(who.lang)
        style = session.data.options.get("style", "sing")
        sung = self.shop.music_is_bark and style == "sing"
        prompt = MOOD_LYRICS[action.mood] if sung else MOOD_PROMPTS[action.mood]
        session = await self.shop.sessions.save(session.evolve(prompt=prompt, awaiting=Awaiting.NOTHING))
        return await self.confirm(ctx, who, session)

    # --- confirm and submit ------------------------------------------------------------------
    async def next(self, ctx: ChatContext, who: Caller, session: Session, action: act.Next) -> Reply:
        return await self.confirm(ctx, who, session)

    async def confirm(self, ctx: ChatContext, who: Caller, session: Session, *, send_new: bool = False) -> Reply:
        shop, lang = self.shop, who.lang
        chosen = session.data.action
        if chosen not in shop.models:
            return await self.back(ctx, who, session, act.Back(session.id))
        spec = shop.models[chosen]
        session = await shop.sessions.save(session.evolve(step=Step.CONFIRM, awaiting=Awaiting.NOTHING))
        balance = await shop.ledger.balance(who.user.id)
        what = views.describe_choice(lang, chosen, session, shop.templates)
        screen = views.confirm(lang, session, what=what, details=self.details(lang, session, spec),
                               price=spec.price_for(session.data.options), balance=balance)
        if send_new or session.message_id is None:
            return send(ctx, session, screen)
        return edit(ctx, session, screen)

    def details(self, lang: str, session: Session, spec: ModelSpec) -> str:
        data = session.data
        if spec.action == TEMPLATE:
            options = spec.resolve_options(data.options)
            parts = [t(lang, "time.seconds", n=options["duration"]), options["aspect_ratio"],
                     options["resolution"]]
            if data.prompt:
                parts.append(f"“{_short(data.prompt)}”")
            return " · ".join(parts)
        if spec.action == MUSIC:
            return f"“{_short(data.prompt or '')}”"
        return t(lang, "studio.glitch_details", seconds=int(self.shop.limits.glitch_max_seconds))

    async def back(self, ctx: ChatContext, who: Caller, session: Session, action: act.Back) -> Reply:
        sessions, lang = self.shop.sessions, who.lang
        if session.data.frame and session.data.video:
            session = await sessions.save(session.evolve(step=Step.FRAME, awaiting=Awaiting.NOTHING, action=None))
            return edit(ctx, session, views.frame(lang, session))
        if session.data.clip:
            session = await sessions.save(session.evolve(step=Step.ASK_IMAGE, awaiting=Awaiting.IMAGE))
            return edit(ctx, session, views.ask_image(lang, session, has_last_frame=False))
        return await self.cancel(ctx, who, session, act.Cancel(session.id))

    async def cancel(self, ctx: ChatContext, who: Caller, session: Session, action: act.Cancel) -> Reply:
        session = await self.shop.sessions.save(session.evolve(step=Step.CLOSED, awaiting=Awaiting.NOTHING))
        return edit(ctx, session, views.closed(who.lang, session))

    async def submit(self, ctx: ChatContext, who: Caller, session: Session, action: act.Submit) -> Reply:
        shop, lang = self.shop, who.lang
        if session.step != Step.CONFIRM:
            return refuse(lang, "error.already_done")
        request = session_request(session.data, shop.templates)
        # The charge is keyed on the pressed message and the screen's version, so a press
        # handled twice (two instances) charges once even past the session's own check.
        pressed = ctx.message_id or session.message_id or "-"
        charge_key = f"press:{ctx.platform}:{ctx.chat_id}:{pressed}:{session.id}.{session.version}"
        # Claim the confirm step first: a double press or a second instance loses here.
        claimed = await shop.sessions.save(session.evolve(step=Step.SUBMITTED))
        try:
            job = await shop.engine.submit(
                user_id=who.user.id, platform=ctx.platform, chat_id=ctx.chat_id, language=lang,
                request=request, reply_to_message_id=session.data.source_message_id or session.message_id,
                session_id=session.id, charge_key=charge_key, owner_id=ctx.user_id,
                owner_name=owner_name(ctx),
            )
        except LokizError as exc:
            reopened = await shop.sessions.save(claimed.evolve(step=Step.CONFIRM))
            reply = Reply([Alert(t(lang, exc.key, **exc.params))])
            if isinstance(exc, InsufficientCredits):  # show the shortfall on the confirm screen
                reply.outs.extend((await self.confirm(ctx, who, reopened)).outs)
            return reply
        claimed = await shop.sessions.save(claimed.evolve(last_job=job.id))
        return edit(ctx, claimed, views.started(lang, claimed, job.id))


def owner_name(ctx: ChatContext) -> str:
    """How a result in a group names who asked for it (settled at submit; travels with the job)."""
    return ctx.display_name or (f"@{ctx.username}" if ctx.username else ctx.user_id)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
