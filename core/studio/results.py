"""The buttons under a finished result: like, remix, again, add music, add to clip, cancel."""

from __future__ import annotations

from pathlib import Path

from core import actions as act
from core import job_screens
from core.catalogue import MUSIC
from core.i18n import t
from core.jobs import DELIVERED, SUCCEEDED, Job
from core.media.edit import mux_music
from core.media.probe import probe
from core.notify import OutputMedia
from core.screens import Screen
from core.studio.intake import Intake
from core.studio.people import Caller
from core.studio.replies import Alert, ChatContext, Edit, Reply, SendMedia
from core.studio.requests import again
from core.studio.social import Social
from core.studio.steps import owner_name
from core.studio.workshop import Workshop, refuse


class Results:
    def __init__(self, shop: Workshop, intake: Intake, social: Social) -> None:
        self.shop = shop
        self.intake = intake
        self.social = social

    async def like(self, ctx: ChatContext, who: Caller, job: Job, action: act.Like) -> Reply:
        """👍 (anyone in the chat): a clip's post keeps one like per person, toggled; a
        song (no post) counts likes on the job as before."""
        if job.action != MUSIC:
            return await self.social.like_result(ctx, who, job)
        likes = await self.shop.jobs.like(job.id, who.user.id)
        reply = Reply([Alert(t(who.lang, "job.liked", n=likes))])
        if ctx.message_id:  # the count shows on the result's own 👍 button
            screen = job_screens.result_screen(
                job, job_screens.describe(job, self.shop.templates, job.language),
                local_preview=job.backend == "local", likes=likes,
                again=await self.shop.ledger.presses(again_prefix(ctx, job)),
            )
            reply.add(Edit(screen, ctx.message_id, buttons_only=True))
        return reply

    async def remix(self, ctx: ChatContext, who: Caller, job: Job, action: act.Remix) -> Reply:
        """🌀 Remix (anyone in the chat): the presser's own session on the clip; the
        result names the clip's post as its source."""
        return await self.social.remix_result(ctx, who, job)

    async def cancel(self, ctx: ChatContext, who: Caller, job: Job, action: act.CancelJob) -> Reply:
        refunded = await self.shop.engine.cancel(job.id, user_id=who.user.id)
        return Reply([Alert(t(who.lang, "job.canceled", n=refunded))])

    async def again(self, ctx: ChatContext, who: Caller, job: Job, action: act.Again) -> Reply:
        """Run a result's request again: once per version of the result's buttons.

        Presses of the same screen share one charge key (a double press makes one job);
        the first press moves the buttons to the next version, where a press is a new job.
        """
        prefix = again_prefix(ctx, job)
        current = await self.shop.ledger.presses(prefix)
        if action.version != current:
            return refuse(who.lang, "error.already_done")
        repeat = await self.shop.engine.submit(
            user_id=who.user.id, platform=job.platform, chat_id=ctx.chat_id, language=who.lang,
            request=again(job.request), reply_to_message_id=ctx.message_id, session_id=job.session_id,
            charge_key=f"{prefix}{action.version}", owner_id=ctx.user_id, owner_name=owner_name(ctx),
        )
        reply = Reply([Alert(t(who.lang, "job.again_started", id=repeat.id, price=repeat.price))])
        if ctx.message_id:
            post = await self.social.posts.of_job(job.id) if job.action != MUSIC else None
            screen = job_screens.result_screen(
                job, job_screens.describe(job, self.shop.templates, job.language),
                local_preview=job.backend == "local", likes=job.likes, again=current + 1,
                post_deleted=post is not None and post.deleted,  # its 👍 / 🌀 / 🗑 stay gone
            )
            reply.add(Edit(screen, ctx.message_id, buttons_only=True))
        return reply

    async def music(self, ctx: ChatContext, who: Caller, job: Job, action: act.AddMusic) -> Reply:
        output = await self.shop.media.here(job.output_path) if job.output_path else None
        if output is None or not output.exists():
            return refuse(who.lang, "error.session_expired")
        return await self.intake.music(ctx, who, mux_target=str(output))

    async def mux(self, ctx: ChatContext, who: Caller, job: Job, action: act.AddToClip) -> Reply:
        """Put a music result under the user's clip (free): the clip the music was
        made for, else their latest finished video in this chat, else their last source video."""
        lang = who.lang
        if job.status not in (SUCCEEDED, DELIVERED) or not job.output_path:
            return refuse(lang, "error.job_not_ready")
        video = await self._clip_for_music(ctx, who, job)
        if video is None:
            return refuse(lang, "error.no_clip_for_music")
        out = self.shop.media.path("mux", f"{job.id}-{video.stem[:16]}.mp4")
        muxed = await mux_music(video, await self.shop.media.here(job.output_path), out)
        info = await probe(muxed)
        media = OutputMedia(path=muxed, kind="video", duration=info.duration, width=info.width,
                            height=info.height)
        screen = Screen(t(lang, "studio.muxed", id=job.id))
        return Reply([Alert(t(lang, "studio.muxing")), SendMedia(media, screen, ctx.message_id)])

    async def _clip_for_music(self, ctx: ChatContext, who: Caller, music_job: Job) -> Path | None:
        here = self.shop.media.here
        if music_job.request.clip and (clip := await here(music_job.request.clip)).exists():
            return clip
        for job in await self.shop.jobs.for_user(who.user.id, limit=20):
            if job.action != MUSIC and job.status == DELIVERED and job.chat_id == ctx.chat_id \
                    and job.output_path and (output := await here(job.output_path)).exists():
                return output
        latest = await self.shop.sessions.latest_with(who.user.id, "video")
        if latest is not None and latest.data.video and Path(latest.data.video).exists():
            return Path(latest.data.video)
        return None


def again_prefix(ctx: ChatContext, job: Job) -> str:
    """Charge keys of Again presses on one result message (platform, chat, message)."""
    return f"press:{ctx.platform}:{ctx.chat_id}:{ctx.message_id or job.id}:again:"
