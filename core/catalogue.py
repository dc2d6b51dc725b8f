"""What the bot can make: the four models as data, and the template catalogue.

Each model is described once (id, options with allowed values and defaults,
price, how a request becomes model inputs, how to read the output), so a new
model or a changed schema is a one-place change.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from core.backends.base import GenerationRequest, extract_output_url, job_marker
from core.errors import ConfigError, LokizError
from core.settings import Settings

TEMPLATE = "template"
GLITCH_ANIMATE = "glitch_animate"
GLITCH_REPLACE = "glitch_replace"
MUSIC = "music"
ACTIONS = (TEMPLATE, GLITCH_ANIMATE, GLITCH_REPLACE, MUSIC)

MAX_PROMPT_CHARS = 1000


class UnknownTemplate(LokizError):
    key = "error.unknown_template"


class OptionInvalid(LokizError):
    """params: option, value, allowed."""

    key = "error.option_invalid"


@dataclass(frozen=True)
class Option:
    """One model input a user may choose.

    `offered`: the studio's options screen shows it (only offered options are accepted from a
    button). `surcharges`: extra credits per value (e.g. {"1080p": 10}); a value that costs us
    more must be priced here, or not offered.
    """

    name: str
    choices: tuple[Any, ...]
    default: Any
    offered: bool = False
    surcharges: Mapping[Any, int] = field(default_factory=dict)

    def surcharge(self, value: Any) -> int:
        return int(self.surcharges.get(value, 0))


@dataclass(frozen=True)
class JobRequest:
    """What a user asked for, in product words; stored with the job."""

    action: str
    prompt: str = ""
    image: str | None = None  # path of the captured frame / uploaded photo
    clip: str | None = None  # path of the (trimmed) glitch template clip
    template: str | None = None
    look: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    source_post: int | None = None  # the post a remix was made from (lineage, SPEC §12)

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action, "prompt": self.prompt, "image": self.image,
            "clip": self.clip, "template": self.template, "look": self.look,
            "options": dict(self.options), "seed": self.seed, "source_post": self.source_post,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobRequest:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


# A model's inputs by its schema, and hints for the local renderer.
Built = tuple[dict[str, Any], dict[str, Any]]


@dataclass(frozen=True)
class ModelSpec:
    action: str
    model_id: str
    price: int
    output_kind: str  # "video" | "audio"
    options: tuple[Option, ...]
    build_inputs: Callable[[JobRequest, dict[str, Any], str], Built]
    read_output: Callable[[Any], str]
    typical_seconds: float
    output_suffix: str = ".mp4"

    def option(self, name: str) -> Option:
        for option in self.options:
            if option.name == name:
                return option
        raise OptionInvalid(f"{self.action} has no option {name!r}", option=name, value="", allowed="")

    @property
    def offered(self) -> tuple[Option, ...]:
        """The options the studio's screen lets a user choose."""
        return tuple(option for option in self.options if option.offered)

    def price_for(self, chosen: Mapping[str, Any]) -> int:
        """The price with the chosen options' surcharges (OptionInvalid for values not allowed)."""
        values = self.resolve_options(chosen)
        return self.price + sum(option.surcharge(values[option.name]) for option in self.options)

    def resolve_options(self, chosen: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults overlaid with the user's choices, each checked against its allowed values."""
        values = {option.name: option.default for option in self.options}
        for name, value in chosen.items():
            option = self.option(name)
            if value not in option.choices:
                allowed = ", ".join(map(str, option.choices))
                raise OptionInvalid(
                    f"{name}={value!r} not in {allowed}", option=name, value=value, allowed=allowed
                )
            values[name] = value
        return values

    def request_for(self, job_id: str, request: JobRequest) -> GenerationRequest:
        """What the backend generates for a job: model inputs (local files as `Path`s) and hints."""
        inputs, hints = self.build_inputs(request, self.resolve_options(request.options), job_id)
        return GenerationRequest(self.action, self.model_id, inputs, hints)


# --- output readers (the port's one extractor) --------------------------------------
def _url(value: Any) -> str:
    return extract_output_url(value)


def _audio_out(value: Any) -> str:
    return extract_output_url(value, "audio_out")


# --- input builders ---------------------------------------------------------------
def _need(path: str | None, what: str) -> Path:
    if not path:
        raise OptionInvalid(f"{what} is missing", option=what, value="", allowed="")
    return Path(path)


def _veo_inputs(request: JobRequest, options: dict[str, Any], job_id: str) -> Built:
    return {
        "image": _need(request.image, "image"),
        "prompt": request.prompt,
        "duration": options["duration"],
        "aspect_ratio": options["aspect_ratio"],
        "resolution": options["resolution"],
        "generate_audio": options["generate_audio"],
        "seed": request.seed,
        "negative_prompt": "blurry, distorted faces, extra limbs, text, watermark",
    }, {"look": request.look}


def _wan_inputs(request: JobRequest, options: dict[str, Any], job_id: str) -> Built:
    return {
        "video": _need(request.clip, "clip"),
        "character_image": _need(request.image, "image"),
        "resolution": options["resolution"],
        "frames_per_second": options["frames_per_second"],
        "go_fast": options["go_fast"],
        "seed": request.seed,
    }, {}


def bark_prompt(text: str, *, sing: bool) -> str:
    """Bark sings text wrapped in ♪ … ♪."""
    text = text.strip()
    return f"♪ {text.strip('♪ ')} ♪" if sing else text


def _bark_inputs(request: JobRequest, options: dict[str, Any], job_id: str) -> Built:
    return {
        "prompt": bark_prompt(request.prompt, sing=options["style"] == "sing"),
        "history_prompt": options["voice"],
        # Bark has no seed: the job's marker rides in the last digits of a temperature
        # (0.7 to 0.701, inaudible), so `start` can tell this job's prediction apart.
        "text_temp": 0.7 + (job_marker(job_id) % 1_000_000) / 1e9,
        "waveform_temp": 0.7,
    }, {"duration": 14}


def _musicgen_inputs(request: JobRequest, options: dict[str, Any], job_id: str) -> Built:
    return {
        "prompt": request.prompt,
        "duration": options["duration"],
        "model_version": "stereo-melody-large",
        "output_format": "mp3",
        "seed": job_marker(job_id),  # random per job anyway; derived, it marks the job
    }, {}


def build_models(settings: Settings) -> dict[str, ModelSpec]:
    """The four models, with ids and prices from the settings."""
    wan_options = (
        Option("resolution", ("480", "720"), "480"),
        Option("frames_per_second", (16, 24), 24),
        Option("go_fast", (True, False), True),
    )
    if settings.music_model == "bark":
        music = ModelSpec(
            MUSIC, settings.model_music_bark, settings.price_music, "audio",
            (
                Option("style", ("sing", "speak"), "sing"),
                Option("voice", ("announcer", "en_speaker_6", "en_speaker_9", "ko_speaker_0"), "en_speaker_6"),
            ),
            _bark_inputs, _audio_out, typical_seconds=40, output_suffix=".wav",
        )
    else:
        music = ModelSpec(
            MUSIC, settings.model_music_musicgen, settings.price_music, "audio",
            (Option("duration", (8, 15, 30), 15),),
            _musicgen_inputs, _url, typical_seconds=60, output_suffix=".mp3",
        )
    return {
        TEMPLATE: ModelSpec(
            TEMPLATE, settings.model_template, settings.price_template, "video",
            (
                # The price covers the longest clip, so a shorter one needs no surcharge.
                Option("duration", (4, 6, 8), 8, offered=True),
                Option("aspect_ratio", ("16:9", "9:16"), "16:9", offered=True),
                Option("resolution", ("720p", "1080p"), "720p", offered=True,
                       surcharges={"1080p": settings.price_template_1080p}),
                Option("generate_audio", (True, False), True),
            ),
            _veo_inputs, _url, typical_seconds=90,
        ),
        GLITCH_ANIMATE: ModelSpec(
            GLITCH_ANIMATE, settings.model_glitch_animate, settings.price_glitch_animate,
            "video", wan_options, _wan_inputs, _url, typical_seconds=150,
        ),
        GLITCH_REPLACE: ModelSpec(
            GLITCH_REPLACE, settings.model_glitch_replace, settings.price_glitch_replace,
            "video", wan_options, _wan_inputs, _url, typical_seconds=150,
        ),
        MUSIC: music,
    }


# --- templates ----------------------------------------------------------------
@dataclass(frozen=True)
class Template:
    id: str
    name: Mapping[str, str]
    description: Mapping[str, str]
    prompt: Mapping[str, str]
    look: str
    options: Mapping[str, Any]

    def text(self, field_name: str, lang: str) -> str:
        values: Mapping[str, str] = getattr(self, field_name)
        return values.get(lang) or values["en"]


class TemplateCatalogue:
    """The operator-editable list of templates (`TEMPLATES_FILE` or the built-in one)."""

    def __init__(self, templates: list[Template]) -> None:
        self._by_id = {template.id: template for template in templates}

    @classmethod
    def load(cls, path: Path | None = None) -> TemplateCatalogue:
        source = str(path) if path else "core/data/templates.json"
        try:
            if path is None:
                raw = resources.files("core").joinpath("data/templates.json").read_text("utf-8")
            else:
                raw = path.read_text(encoding="utf-8")
            data = json.loads(raw)
            templates = [
                Template(
                    id=item["id"], name=item["name"], description=item["description"],
                    prompt=item["prompt"], look=item.get("look", ""),
                    options=item.get("options", {}),
                )
                for item in data["templates"]
            ]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"TEMPLATES_FILE: cannot read {source}: {exc}") from None
        for template in templates:
            for part in ("name", "description", "prompt"):
                if "en" not in getattr(template, part):
                    raise ConfigError(f"TEMPLATES_FILE: {template.id} has no English {part}")
        return cls(templates)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, template_id: str) -> Template:
        try:
            return self._by_id[template_id]
        except KeyError:
            raise UnknownTemplate(f"no template {template_id!r}", template=template_id) from None
