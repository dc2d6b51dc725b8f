"""What a job looks like in a chat: status, result caption, failure."""

from __future__ import annotations

from core.actions import AddMusic, AddToClip, Again, CancelJob, DeleteClip, Like, Remix
from core.catalogue import (
    GLITCH_ANIMATE,
    GLITCH_REPLACE,
    MUSIC,
    TEMPLATE,
    TemplateCatalogue,
    UnknownTemplate,
)
from core.i18n import t
from core.jobs import Job
from core.screens import Button, Screen


def describe(job: Job, templates: TemplateCatalogue | None, lang: str) -> str:
    """What was made, in the user's words: 'AI hug', 'Glitch · Replace', 'Music'."""
    request = job.request
    if job.action == TEMPLATE:
        if request.template and templates is not None:
            try:
                return templates.get(request.template).text("name", lang)
            except UnknownTemplate:
                pass
        return t(lang, "job.what.custom")
    return t(lang, {
        GLITCH_ANIMATE: "job.what.glitch_animate",
        GLITCH_REPLACE: "job.what.glitch_replace",
        MUSIC: "job.what.music",
    }.get(job.action, "job.what.custom"))


def duration_text(lang: str, seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return t(lang, "time.seconds", n=seconds)
    return t(lang, "time.minutes", m=seconds // 60, s=seconds % 60)


def cancel_row(job: Job, lang: str) -> tuple[tuple[Button, ...], ...]:
    return ((Button(t(lang, "button.cancel_job"), CancelJob(job.id), "danger"),),)


def queued_screen(job: Job, what: str, position: int) -> Screen:
    lang = job.language
    return Screen(t(lang, "job.queued", what=what, position=position, id=job.id), cancel_row(job, lang))


def running_screen(job: Job, what: str, elapsed: float, estimate: float) -> Screen:
    lang = job.language
    remaining = estimate - elapsed
    if remaining > 5:
        eta = t(lang, "job.eta", left=duration_text(lang, remaining))
    else:
        eta = t(lang, "job.eta_soon")
    text = t(lang, "job.running", what=what, elapsed=duration_text(lang, elapsed), eta=eta, id=job.id)
    return Screen(text, cancel_row(job, lang))


def sending_screen(job: Job, what: str) -> Screen:
    return Screen(t(job.language, "job.sending", what=what, id=job.id))


def done_screen(job: Job, what: str, post_id: int | None = None) -> Screen:
    text = t(job.language, "job.done", what=what, id=job.id)
    if post_id is not None:  # the clip's post number, for /post and /delete
        text += "\n" + t(job.language, "social.done_post", id=post_id)
    return Screen(text)


def failed_screen(job: Job, what: str, reason: str, refunded: int) -> Screen:
    lang = job.language
    refund = t(lang, "job.refunded", n=refunded) if refunded else ""
    return Screen(
        t(lang, "job.failed", what=what, reason=t(lang, f"job.reason.{reason}"), refund=refund, id=job.id)
    )


def result_screen(
    job: Job, what: str, *, local_preview: bool, likes: int = 0, again: int = 0,
    resent: bool = False, lineage: str = "", post_deleted: bool = False,
) -> Screen:
    """A result's caption and buttons. `again` counts the Again presses it has taken (its
    version: a press of an older version is a double press); `resent` says it may be a
    second copy (after a restart); `lineage` is where a remix comes from ("remix of
    @alice's clip · generation 2"). 👍 and 🌀 are everyone's; Again, Add music and 🗑
    are the owner's (🗑 also a chat admin's). Once its post is deleted (`post_deleted`)
    only the owner's studio actions stay: 👍, 🌀 and 🗑 were about the post."""
    lang = job.language
    caption = t(lang, "job.result", what=what, price=job.price, id=job.id)
    if lineage:
        caption += "\n" + lineage
    if local_preview:
        caption += "\n" + t(lang, "job.local_preview")
    if resent:
        caption += "\n" + t(lang, "job.resent_after_restart")
    like = Button(f"👍 {likes}" if likes else "👍", Like(job.id))
    again_label = t(lang, "button.again_more", n=again) if again else t(lang, "button.again")
    again_button = Button(again_label, Again(job.id, again))
    delete = Button(t(lang, "social.button.delete"), DeleteClip(job.id), "danger")
    if job.action == MUSIC:  # a song is not a clip: no post, so no 🗑
        rows: tuple[tuple[Button, ...], ...] = (
            (Button(t(lang, "button.add_to_clip"), AddToClip(job.id), "primary"), again_button, like),
        )
    elif post_deleted:
        rows = ((Button(t(lang, "button.add_music"), AddMusic(job.id)), again_button),)
    else:
        rows = (
            (Button(t(lang, "button.remix"), Remix(job.id), "primary"),
             Button(t(lang, "button.add_music"), AddMusic(job.id))),
            (again_button, like, delete),
        )
    return Screen(caption, rows)
