"""The studio (SPEC §2): video in → frame → template / glitch / music → job.

The parts each have one reason to change: `intake` (what users send), `steps`
(the flow's screens and choices), `results` (buttons under a result), `people`
(who and which language), `requests` (the job a session asks for). A press is
found in a table keyed by its action's type, never by comparing strings. All
rules live here, so every platform behaves the same; the Desk is the one door in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from core import actions as act
from core.catalogue import ModelSpec, TemplateCatalogue
from core.credits import CreditLedger
from core.engine import JobEngine
from core.errors import LokizError
from core.i18n import t
from core.jobs import Job, JobStore
from core.media_store import MediaStore
from core.sessions import Awaiting, Session, SessionStore, StaleSession
from core.social import Posts
from core.studio.intake import Intake
from core.studio.people import Caller, People
from core.studio.replies import Alert, ChatContext, Reply
from core.studio.results import Results
from core.studio.social import Social
from core.studio.steps import Steps
from core.studio.workshop import StudioLimits, Workshop, refuse

__all__ = ["Studio", "StudioLimits"]

SessionHandler = Callable[[ChatContext, Caller, Session, Any], Awaitable[Reply]]
JobHandler = Callable[[ChatContext, Caller, Job, Any], Awaitable[Reply]]


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
        music_is_bark: bool = True,
        posts: Posts | None = None,
    ) -> None:
        self.shop = Workshop(ledger, sessions, jobs, engine, models, templates, media, limits, music_is_bark)
        self.people = People(ledger, default_language)
        self.steps = Steps(self.shop)
        self.intake = Intake(self.shop, self.steps)
        self.social = Social(self.shop, self.intake, posts or Posts(ledger.db, templates=templates))
        self.results = Results(self.shop, self.intake, self.social)
        steps, results = self.steps, self.results
        self.on_session: dict[type[act.SessionAction], SessionHandler] = {
            act.SeekFrame: steps.seek, act.Scrub: steps.scrub, act.SharpestNearby: steps.sharpest, act.OpenTemplates: steps.templates,
            act.PickTemplate: steps.pick, act.CustomPrompt: steps.custom, act.SetOption: steps.option,
            act.Next: steps.next, act.Back: steps.back, act.OpenGlitch: steps.glitch,
            act.UseLastFrame: steps.last_frame, act.PickMode: steps.mode, act.OpenMusic: steps.music,
            act.PickStyle: steps.style, act.PickMood: steps.mood, act.Submit: steps.submit,
            act.Cancel: steps.cancel,
        }
        self.on_job: dict[type[act.JobAction], JobHandler] = {
            act.Like: results.like, act.Remix: results.remix, act.CancelJob: results.cancel,
            act.Again: results.again, act.AddMusic: results.music, act.AddToClip: results.mux,
        }

    @property
    def templates(self) -> TemplateCatalogue:
        return self.shop.templates

    @property
    def models(self) -> dict[str, ModelSpec]:
        return self.shop.models

    async def press(self, ctx: ChatContext, who: Caller, action: act.Action | None) -> Reply:
        """A button was pressed: its typed action finds its handler; the owner is checked first."""
        lang = who.lang
        try:
            if isinstance(action, act.ChooseLanguage):
                return await self.people.set_language(ctx, who, action.code)
            if isinstance(action, act.JobAction) and type(action) in self.on_job:
                job = await self.shop.jobs.get(action.job)
                if job is None:
                    return refuse(lang, "error.job_not_found")
                if not isinstance(action, act.Like | act.Remix) and job.user_id != who.user.id:
                    return refuse(lang, "error.not_your_session")
                return await self.on_job[type(action)](ctx, who, job, action)
            if isinstance(action, act.SessionAction) and type(action) in self.on_session:
                async with self.shop.lock(action.session):
                    session = await self.shop.own_session(who.user, lang, action.session)
                    if isinstance(session, Reply):
                        return session
                    return await self.on_session[type(action)](ctx, who, session, action)
        except StaleSession:
            return refuse(lang, "error.already_done")
        except LokizError as exc:
            return Reply([Alert(t(lang, exc.key, **exc.params))])
        return refuse(lang)

    async def awaiting(self, session_id: str) -> Awaiting:
        """What the session now waits for (read after a reply, for the adapters' hints)."""
        session = await self.shop.sessions.get(session_id)
        return session.awaiting if session is not None else Awaiting.NOTHING

    async def bind_message(self, session_id: str, message_id: str) -> None:
        """The adapter sent the session's studio message: later presses edit it."""
        async with self.shop.lock(session_id):
            session = await self.shop.sessions.get(session_id)
            if session is not None and session.message_id != message_id:
                await self.shop.sessions.save(session.evolve(message_id=message_id))

    def temp_file(self, suffix: str) -> Path:
        """A fresh path in the media store's temp area, for a download the studio will take."""
        return self.shop.media.temp(suffix)
