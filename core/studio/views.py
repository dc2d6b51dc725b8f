"""The studio's screens, one function per step of SPEC §2."""

from __future__ import annotations

from pathlib import Path

from core import actions as act
from core.catalogue import GLITCH_ANIMATE, MUSIC, TEMPLATE, ModelSpec, Template, TemplateCatalogue
from core.i18n import t
from core.media.timestamps import format_timestamp
from core.screens import Button, Screen
from core.sessions import Session

SCRUB_STEPS = (("-10", "−1s"), ("-1", "−0.1s"), ("1", "+0.1s"), ("10", "+1s"))
MOODS = ("lofi", "epic", "happy", "dark")


def _cancel(lang: str, session: Session) -> Button:
    return Button(t(lang, "button.cancel"), act.Cancel(session.id), "danger")


def _back(lang: str, session: Session) -> Button:
    return Button(t(lang, "button.back"), act.Back(session.id))


def welcome(lang: str, balance: int, starter: int) -> Screen:
    gift = t(lang, "studio.welcome_gift", n=starter) if starter else ""
    return Screen(t(lang, "studio.welcome", balance=balance, gift=gift))


def contact_sheet(lang: str, session: Session, image: Path, times: list[float]) -> Screen:
    tiles = [
        Button(format_timestamp(time), act.SeekFrame(session.id, round(time * 10)))
        for time in times
    ]
    rows = [tuple(tiles[i:i + 3]) for i in range(0, len(tiles), 3)]
    rows.append((_cancel(lang, session),))
    return Screen(t(lang, "studio.sheet"), tuple(rows), image=image)


def frame(lang: str, session: Session, *, note: str = "") -> Screen:
    at = session.data.at or 0.0
    duration = session.data.duration or 0.0
    text = t(lang, "studio.frame", at=format_timestamp(at), duration=format_timestamp(duration))
    if note:
        text = f"{note}\n{text}"
    scrub = tuple(Button(label, act.Scrub(session.id, int(delta))) for delta, label in SCRUB_STEPS)
    actions = (
        Button(t(lang, "button.template"), act.OpenTemplates(session.id), "primary"),
        Button(t(lang, "button.glitch"), act.OpenGlitch(session.id), "primary"),
        Button(t(lang, "button.music"), act.OpenMusic(session.id), "primary"),
    )
    sharpest = Button(t(lang, "button.sharpest"), act.SharpestNearby(session.id))
    return Screen(text, (scrub, actions, (sharpest, _cancel(lang, session))), image=_image(session))


def templates(lang: str, session: Session, catalogue: TemplateCatalogue, price: int) -> Screen:
    lines = [t(lang, "studio.templates", price=price)]
    for template in catalogue:
        lines.append(f"• {template.text('name', lang)} — {template.text('description', lang)}")
    choices = tuple(
        Button(template.text("name", lang), act.PickTemplate(session.id, template.id))
        for template in catalogue
    )
    return Screen(
        "\n".join(lines),
        ((Button(t(lang, "button.custom_prompt"), act.CustomPrompt(session.id)), _back(lang, session)),),
        image=_image(session),
        select=choices,
        select_placeholder=t(lang, "studio.templates_placeholder"),
    )


def template_options(lang: str, session: Session, spec: ModelSpec, title: str) -> Screen:
    chosen = session.data.options
    rows: list[tuple[Button, ...]] = []
    for option in spec.offered:
        name = option.name
        current = chosen.get(name, option.default)
        rows.append(tuple(
            Button(  # the choice travels as its index: values like "16:9" hold the separator
                ("✅ " if value == current else "") + _option_label(lang, name, value)
                + (f" +{option.surcharge(value)}" if option.surcharge(value) else ""),
                act.SetOption(session.id, name, index),
                "primary" if value == current else "secondary",
            )
            for index, value in enumerate(option.choices)
        ))
    rows.append((
        Button(t(lang, "button.next"), act.Next(session.id), "success"),
        _back(lang, session),
    ))
    return Screen(t(lang, "studio.options", what=title), tuple(rows), image=_image(session))


def _option_label(lang: str, name: str, value: object) -> str:
    if name == "duration":
        return t(lang, "time.seconds", n=value)
    return str(value)


def confirm(lang: str, session: Session, *, what: str, details: str, price: int, balance: int) -> Screen:
    text = t(lang, "studio.confirm", what=what, details=details, price=price, balance=balance,
             after=balance - price)
    if balance < price:
        text += "\n" + t(lang, "studio.confirm_short", shortfall=price - balance)
    return Screen(
        text,
        (
            (Button(t(lang, "button.confirm", price=price), act.Submit(session.id), "success"),),
            (_back(lang, session), _cancel(lang, session)),
        ),
        image=_image(session),
    )


def ask_clip(lang: str, session: Session, max_seconds: float) -> Screen:
    return Screen(
        t(lang, "studio.ask_clip", seconds=int(max_seconds)),
        ((_back(lang, session), _cancel(lang, session)),),
        image=_image(session),
    )


def ask_image(lang: str, session: Session, *, has_last_frame: bool) -> Screen:
    rows: list[tuple[Button, ...]] = []
    if has_last_frame:
        rows.append((Button(t(lang, "button.last_frame"), act.UseLastFrame(session.id), "primary"),))
    rows.append((_cancel(lang, session),))
    return Screen(t(lang, "studio.ask_image"), tuple(rows))


def glitch_modes(lang: str, session: Session, prices: dict[str, int]) -> Screen:
    return Screen(
        t(lang, "studio.glitch_modes", animate=prices[GLITCH_ANIMATE], replace=prices["glitch_replace"]),
        (
            (
                Button(t(lang, "button.animate"), act.PickMode(session.id, "animate"), "primary"),
                Button(t(lang, "button.replace"), act.PickMode(session.id, "replace"), "primary"),
            ),
            (_cancel(lang, session),),
        ),
        image=_image(session),
    )


def music(lang: str, session: Session, spec: ModelSpec, *, bark: bool) -> Screen:
    rows: list[tuple[Button, ...]] = [
        tuple(Button(t(lang, f"music.mood.{mood}"), act.PickMood(session.id, mood)) for mood in MOODS[:2]),
        tuple(Button(t(lang, f"music.mood.{mood}"), act.PickMood(session.id, mood)) for mood in MOODS[2:]),
    ]
    if bark:
        style = session.data.options.get("style", spec.option("style").default)
        rows.append(tuple(
            Button(("✅ " if value == style else "") + t(lang, f"music.style.{value}"),
                   act.PickStyle(session.id, value))
            for value in spec.option("style").choices
        ))
    rows.append((Button(t(lang, "button.type_prompt"), act.CustomPrompt(session.id)),
                 _back(lang, session) if session.data.frame else _cancel(lang, session)))
    about = t(lang, "music.about_bark" if bark else "music.about_musicgen")
    return Screen(t(lang, "studio.music", price=spec.price, about=about), tuple(rows), image=_image(session))


def ask_prompt(lang: str, session: Session, *, for_music: bool) -> Screen:
    key = "studio.ask_music_prompt" if for_music else "studio.ask_prompt"
    return Screen(t(lang, key), ((_back(lang, session),),), image=_image(session))


def started(lang: str, session: Session, job_id: str) -> Screen:
    """The studio message after a job starts: the frame again, ready for another effect."""
    note = t(lang, "studio.started", id=job_id)
    if session.data.frame and session.data.video:
        return frame(lang, session, note=note)
    return Screen(note, image=_image(session))


def closed(lang: str, session: Session) -> Screen:
    return Screen(t(lang, "studio.closed"), image=_image(session))


def template_title(lang: str, session: Session, catalogue: TemplateCatalogue) -> str:
    template_id = session.data.template
    if template_id:
        template: Template = catalogue.get(template_id)
        return template.text("name", lang)
    return t(lang, "job.what.custom")


def describe_choice(lang: str, action: str, session: Session, catalogue: TemplateCatalogue) -> str:
    if action == TEMPLATE:
        return template_title(lang, session, catalogue)
    if action == MUSIC:
        return t(lang, "job.what.music")
    return t(lang, f"job.what.{action}")


def _image(session: Session) -> Path | None:
    image = session.data.frame or session.data.image
    return Path(image) if image else None
