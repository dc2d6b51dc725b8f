"""What a job asks the model for, built in one place for the studio and the CLI's `render`."""

from __future__ import annotations

import dataclasses
import random
import unicodedata
from collections.abc import Mapping
from typing import Any

from core.catalogue import (
    GLITCH_ANIMATE,
    GLITCH_REPLACE,
    MAX_PROMPT_CHARS,
    MUSIC,
    TEMPLATE,
    JobRequest,
    ModelSpec,
    Template,
    TemplateCatalogue,
)
from core.errors import PromptInvalid
from core.sessions import SessionData


def new_seed() -> int:
    return random.randrange(1, 2**31)


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


def preset_options(template: Template, spec: ModelSpec) -> dict[str, Any]:
    """The options a template sets that the studio offers, as a starting point the user may change."""
    offered = {option.name for option in spec.offered}
    return {k: v for k, v in template.options.items() if k in offered}


def template_request(frame: str | None, *, template: Template | None = None, prompt: str | None = None,
                     options: Mapping[str, Any] | None = None, seed: int | None = None) -> JobRequest:
    """A template job on `frame`: a catalogue template (its look, and its English prompt unless
    `prompt` overrides it), or a prompt of the user's own."""
    if template is not None:
        prompt, look, template_id = prompt or template.prompt["en"], template.look, template.id
    else:
        look, template_id = None, None
    return JobRequest(TEMPLATE, prompt=prompt or "", image=frame, template=template_id, look=look,
                      options=dict(options or {}), seed=new_seed() if seed is None else seed)


def glitch_request(mode: str, image: str | None, clip: str | None, *, seed: int | None = None) -> JobRequest:
    assert mode in (GLITCH_ANIMATE, GLITCH_REPLACE)
    return JobRequest(mode, image=image, clip=clip, seed=new_seed() if seed is None else seed)


def music_request(prompt: str, *, options: Mapping[str, Any] | None = None, clip: str | None = None,
                  seed: int | None = None) -> JobRequest:
    return JobRequest(MUSIC, prompt=prompt, options=dict(options or {}), clip=clip,
                      seed=new_seed() if seed is None else seed)


def session_request(data: SessionData, templates: TemplateCatalogue) -> JobRequest:
    """The job a studio session at its confirm step asks for (a remix names its source post)."""
    if data.action == TEMPLATE:
        template = templates.get(data.template) if data.template else None
        request = template_request(data.frame, template=template, prompt=data.prompt, options=data.options)
    elif data.action in (GLITCH_ANIMATE, GLITCH_REPLACE):
        request = glitch_request(data.action, data.image or data.frame, data.clip)
    else:
        request = music_request(data.prompt or "", options=data.options, clip=data.mux_target)
    if data.source_post is not None:
        request = dataclasses.replace(request, source_post=data.source_post)
    return request


def again(request: JobRequest) -> JobRequest:
    """The same request with a new seed (the result's "Again" button)."""
    return JobRequest.from_json({**request.to_json(), "seed": new_seed()})
