"""Account answers (SPEC §2 item 10): balance, jobs, one job, help.

On Discord these are ephemeral; the screens say so and adapters follow.
"""

from __future__ import annotations

import datetime as dt

from core.actions import CancelJob
from core.engine import JobEngine
from core.i18n import t
from core.job_screens import describe
from core.jobs import QUEUED, JobStore
from core.screens import Button, Screen
from core.studio.people import Caller
from core.studio.replies import ChatContext, Reply, Send
from core.studio.studio import Studio


class Account:
    def __init__(self, studio: Studio, jobs: JobStore, engine: JobEngine) -> None:
        self.studio = studio
        self.jobs = jobs
        self.engine = engine

    async def balance(self, ctx: ChatContext, who: Caller) -> Reply:
        user, lang = who.user, who.lang
        prices = {a: s.price for a, s in self.studio.models.items()}
        text = t(lang, "account.balance", balance=user.balance, template=prices["template"],
                 glitch=prices["glitch_animate"], music=prices["music"])
        return Reply([Send(Screen(text, ephemeral=True), ctx.message_id)])

    async def jobs_list(self, ctx: ChatContext, who: Caller) -> Reply:
        user, lang = who.user, who.lang
        jobs = await self.jobs.for_user(user.id, limit=10)
        if not jobs:
            return Reply([Send(Screen(t(lang, "account.no_jobs"), ephemeral=True), ctx.message_id)])
        lines = [t(lang, "account.jobs_title")]
        for job in jobs:
            when = dt.datetime.fromtimestamp(job.created_at, dt.UTC).strftime("%m-%d %H:%M")
            lines.append(t(lang, "account.jobs_line", id=job.id, what=describe(job, self.studio.templates, lang),
                           status=t(lang, f"status.{job.status}"), when=when))
        return Reply([Send(Screen("\n".join(lines), ephemeral=True), ctx.message_id)])

    async def job(self, ctx: ChatContext, who: Caller, job_id: str) -> Reply:
        user, lang = who.user, who.lang
        job = await self.jobs.get(job_id.strip().lower()) if job_id.strip() else None
        if job is None or job.user_id != user.id:
            return Reply([Send(Screen(t(lang, "error.job_not_found"), ephemeral=True), ctx.message_id)])
        lines = [
            t(lang, "account.job_title", id=job.id, what=describe(job, self.studio.templates, lang)),
            t(lang, "account.job_status", status=t(lang, f"status.{job.status}")),
            t(lang, "account.job_price", price=job.price),
        ]
        if job.status == QUEUED:
            position = await self.engine.queue_position(job.id)
            if position:
                lines.append(t(lang, "account.job_position", position=position))
        if job.started_at and job.finished_at:
            lines.append(t(lang, "account.job_took", seconds=round(job.finished_at - job.started_at)))
        if job.error_class:
            lines.append(t(lang, f"job.reason.{job.error_class}"))
            if job.refunded:
                lines.append(t(lang, "job.refunded", n=job.price))
        buttons: tuple[tuple[Button, ...], ...] = ()
        if job.status in ("queued", "running"):
            buttons = ((Button(t(lang, "button.cancel_job"), CancelJob(job.id), "danger"),),)
        return Reply([Send(Screen("\n".join(lines), buttons, ephemeral=True), ctx.message_id)])

    async def help(self, ctx: ChatContext, who: Caller) -> Reply:
        key = f"account.help.{ctx.platform}"
        return Reply([Send(Screen(t(who.lang, key), ephemeral=True), ctx.message_id)])
