"""The local generation backend: real, playable media made with ffmpeg, offline.

It speaks the same protocol as Replicate (statuses, ids, outputs), so the job
engine cannot tell the difference, except that predictions live in memory:
after a restart `get` raises `PredictionLost` and the engine creates anew.
Request hints (`look`, `duration`) steer the renderer; models never see them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import shutil
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from core.backends.base import (
    CANCELED,
    FAILED,
    PROCESSING,
    STARTING,
    SUCCEEDED,
    TERMINAL,
    BackendError,
    GenerationRequest,
    OutputMissing,
    Prediction,
    PredictionLost,
    StartOnce,
    WebhooksUnsupported,
)
from core.backends.local.render import pick_look, render_glitch, render_music, render_template
from core.errors import LokizError
from core.media.ffmpeg import cpu_slot
from core.media.pool import in_worker
from core.media.probe import PROBE_TIMEOUT, probe_image_sync, probe_sync

log = logging.getLogger(__name__)

TEMPLATE = "template"
GLITCH_ANIMATE = "glitch_animate"
GLITCH_REPLACE = "glitch_replace"
MUSIC_BARK = "music_bark"
MUSIC_MUSICGEN = "music_musicgen"
BARK_SECONDS = 14.0
GLITCH_MAX_SECONDS = 10.0


def action_for(model: str) -> str:
    """Which local action stands in for a model id (veo, wan animate/replace, bark, musicgen)."""
    name = model.lower()
    if "veo" in name:
        return TEMPLATE
    if "animate-animation" in name:
        return GLITCH_ANIMATE
    if "animate-replace" in name:
        return GLITCH_REPLACE
    if "bark" in name:
        return MUSIC_BARK
    if "musicgen" in name:
        return MUSIC_MUSICGEN
    raise BackendError(f"the local backend has no stand-in for model {model!r}")


def _json_safe(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value.resolve())
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


def _local_file(value: Any, name: str) -> Path:
    """An input that must be a local file (a path, or a file:// URL)."""
    if isinstance(value, str) and value.startswith("file://"):
        value = url2pathname(urlparse(value).path)
    if not isinstance(value, str | Path) or "://" in str(value):
        raise _InputError(f"{name}: the local backend needs a local file")
    path = Path(value)
    if not path.is_file():
        raise _InputError(f"{name}: file not found")
    return path


class _InputError(Exception):
    """The inputs cannot be rendered (Replicate would fail the prediction likewise)."""


def _partial(out: Path) -> Path:
    """Where a render is written until it is complete (a reader never sees half a file)."""
    return out.with_name(f".{out.name}.part")


def _short_side(resolution: Any, default: int, cap: int) -> int:
    digits = "".join(ch for ch in str(resolution or "") if ch.isdigit())
    wanted = int(digits) if digits else default
    return max(64, min(wanted, cap))


@dataclass
class _Run:
    id: str
    action: str
    hints: Mapping[str, Any] = field(default_factory=dict)
    status: str = STARTING
    output: Any = None
    error: str | None = None
    logs: str = ""
    created: float = field(default_factory=time.monotonic)
    finished: float | None = None
    task: asyncio.Task[None] | None = None


class LocalBackend(StartOnce):
    """Renders predictions with ffmpeg into `work_dir`.

    `delay` (seconds) slows every prediction down, for tests and demos;
    `short_side` caps the output resolution (720 = 720p).
    """

    name = "local"
    supports_webhooks = False

    def __init__(
        self,
        work_dir: Path,
        *,
        delay: float = 0.0,
        short_side: int = 720,
        fps: int = 24,
        timeout: float = 600.0,
    ) -> None:
        super().__init__()
        self.work_dir = Path(work_dir)
        self.delay = delay
        self.short_side = short_side
        self.fps = fps
        self.timeout = timeout
        self._runs: dict[str, _Run] = {}

    async def _prepare(self, job_id: str, request: GenerationRequest) -> dict[str, Any]:
        """Nothing to upload: local paths become strings (JSON-safe, storable)."""
        return {key: _json_safe(value) for key, value in request.inputs.items()}

    async def _find_created(
        self, job_id: str, request: GenerationRequest, inputs: dict[str, Any], since: float
    ) -> str | None:
        return None  # local work does not outlive the process that ran it

    async def _create(
        self,
        job_id: str,
        request: GenerationRequest,
        inputs: dict[str, Any],
        webhook_url: str | None,
    ) -> str:
        run = _Run(id=f"local-{uuid.uuid4().hex}", action=action_for(request.model),
                   hints=dict(request.hints))
        self._runs[run.id] = run
        run.task = asyncio.create_task(self._run(run, dict(inputs)), name=run.id)
        return run.id

    async def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> Prediction:
        raise WebhooksUnsupported("the local backend receives no webhooks")

    async def get(self, prediction_id: str) -> Prediction:
        run = self._runs.get(prediction_id)
        if run is None:
            raise PredictionLost(f"local prediction {prediction_id} is unknown (lost in a restart?)")
        metrics: dict[str, Any] = {}
        if run.finished is not None:
            metrics["predict_time"] = round(run.finished - run.created, 3)
        return Prediction(
            id=run.id,
            status=run.status,
            output=run.output,
            error=run.error,
            logs=run.logs,
            metrics=metrics,
        )

    async def cancel(self, prediction_id: str) -> None:
        """Stop the render (killing ffmpeg) and mark it canceled; finished ones stay as they are."""
        run = self._runs.get(prediction_id)
        if run is None or run.status in TERMINAL or run.task is None:
            return
        run.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run.task
        if run.status not in TERMINAL:  # cancelled before it even started
            run.status, run.finished = CANCELED, time.monotonic()

    async def download(self, output_url: str, dest: Path, *, max_bytes: int) -> Path:
        """Copy a file:// output to `dest` (refusing more than `max_bytes`)."""
        if not isinstance(output_url, str) or not output_url.startswith("file://"):
            raise OutputMissing(f"not a local output: {output_url!r}")
        source = Path(url2pathname(urlparse(output_url).path))
        if not source.is_file():
            raise OutputMissing(f"the local output {source.name} is gone")
        size = source.stat().st_size
        if size > max_bytes:
            raise BackendError(f"output is {size} bytes, more than the {max_bytes} allowed")
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(shutil.copyfile, source, dest)
        return dest

    async def close(self) -> None:
        await self._close_starts()
        for run in list(self._runs.values()):
            await self.cancel(run.id)

    # --- rendering ---------------------------------------------------------
    async def _run(self, run: _Run, inputs: dict[str, Any]) -> None:
        try:
            if self.delay > 0:
                await asyncio.sleep(self.delay / 2)
            run.status = PROCESSING
            if self.delay > 0:
                await asyncio.sleep(self.delay / 2)
            self.work_dir.mkdir(parents=True, exist_ok=True)
            async with cpu_slot():
                run.output = await self._render(run, inputs)
            run.status = SUCCEEDED
        except asyncio.CancelledError:
            run.status = CANCELED
            run.logs += "canceled\n"
            raise
        except (_InputError, LokizError, BackendError) as exc:
            run.status, run.error = FAILED, str(exc)
        except Exception as exc:  # a bug must fail the prediction, not hang the job
            log.exception("local prediction %s crashed", run.id)
            run.status, run.error = FAILED, f"local render crashed: {type(exc).__name__}"
        finally:
            run.finished = time.monotonic()
            for leftover in self.work_dir.glob(f".{run.id}*"):
                leftover.unlink(missing_ok=True)

    async def _render(self, run: _Run, inputs: dict[str, Any]) -> Any:
        seed = _seed(inputs.get("seed"))
        if run.action == TEMPLATE:
            return await self._template(run, inputs, seed)
        if run.action in (GLITCH_ANIMATE, GLITCH_REPLACE):
            return await self._glitch(run, inputs, seed)
        return await self._music(run, inputs, seed)

    async def _template(self, run: _Run, inputs: dict[str, Any], seed: int) -> str:
        image = _local_file(inputs.get("image"), "image")
        try:
            await in_worker(probe_image_sync, image, timeout=PROBE_TIMEOUT, what="reading the picture")
        except LokizError as exc:
            raise _InputError(f"image: {exc}") from None
        try:
            seconds = float(inputs.get("duration") or 8)
        except (TypeError, ValueError):
            raise _InputError("duration: not a number") from None
        if not 1 <= seconds <= 10:
            raise _InputError("duration: must be 4, 6 or 8 seconds")
        aspect = str(inputs.get("aspect_ratio") or "16:9")
        look = pick_look(run.hints.get("look"), seed)
        short = _short_side(inputs.get("resolution"), 720, self.short_side)
        out = self.work_dir / f"{run.id}.mp4"
        run.logs += f"local preview: template look={look} {seconds:g}s {aspect} seed={seed}\n"
        await render_template(
            image, _partial(out), seconds=seconds, aspect_ratio=aspect, short_side=short, look=look,
            seed=seed, audio=bool(inputs.get("generate_audio")), fps=self.fps,
            timeout=self.timeout,
        )
        _partial(out).replace(out)
        return out.resolve().as_uri()

    async def _glitch(self, run: _Run, inputs: dict[str, Any], seed: int) -> str:
        clip = _local_file(inputs.get("video"), "video")
        image = _local_file(inputs.get("character_image"), "character_image")
        try:
            info = await in_worker(probe_sync, clip, None, timeout=PROBE_TIMEOUT, what="reading the clip")
            await in_worker(probe_image_sync, image, timeout=PROBE_TIMEOUT, what="reading the picture")
        except LokizError as exc:
            raise _InputError(str(exc)) from None
        try:
            fps = int(inputs.get("frames_per_second") or self.fps)
        except (TypeError, ValueError):
            fps = self.fps
        fps = max(8, min(fps, 30))
        mode = "animate" if run.action == GLITCH_ANIMATE else "replace"
        short = _short_side(inputs.get("resolution"), 480, self.short_side)
        seconds = min(info.duration, GLITCH_MAX_SECONDS)
        out = self.work_dir / f"{run.id}.mp4"
        run.logs += f"local preview: glitch {mode} {seconds:g}s seed={seed}\n"
        await render_glitch(
            clip, image, _partial(out), mode=mode, seconds=seconds, clip_size=(info.width, info.height),
            short_side=short, fps=fps, seed=seed, work_dir=self.work_dir, timeout=self.timeout,
        )
        _partial(out).replace(out)
        return out.resolve().as_uri()

    async def _music(self, run: _Run, inputs: dict[str, Any], seed: int) -> Any:
        prompt = str(inputs.get("prompt") or "").strip()
        if not prompt:
            raise _InputError("prompt: empty")
        if run.action == MUSIC_BARK:
            seconds = float(run.hints.get("duration") or BARK_SECONDS)
            seed_text = f"{prompt}|{inputs.get('history_prompt')}|{inputs.get('seed')}"
        else:
            try:
                seconds = float(inputs.get("duration") or 8)
            except (TypeError, ValueError):
                raise _InputError("duration: not a number") from None
            seconds = max(1.0, min(seconds, 60.0))
            seed_text = f"{prompt}|{inputs.get('seed')}"
        out = self.work_dir / f"{run.id}.m4a"
        run.logs += f"local preview: music {seconds:g}s\n"
        await render_music(
            _partial(out), prompt=prompt, seconds=seconds, seed=hash_seed(seed_text), timeout=self.timeout
        )
        _partial(out).replace(out)
        url = out.resolve().as_uri()
        # Bark's schema answers {"audio_out": URL}; MusicGen's answers the URL itself
        return {"audio_out": url} if run.action == MUSIC_BARK else url


def _seed(value: Any) -> int:
    """The given seed, or a random one (as Replicate does when none is given)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return random.randrange(2**31)


def hash_seed(text: str) -> int:
    """A stable seed from text (Python's hash() changes between runs)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "big")
