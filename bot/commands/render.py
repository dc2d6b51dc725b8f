"""`python -m bot render …`: one job end to end on the configured backend.

The job runs through the real engine, on a scratch database (an operator's
render costs no one credits), with progress printed as the chat would see it.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bot.app import make_backend
from core.catalogue import (
    GLITCH_ANIMATE,
    GLITCH_REPLACE,
    MUSIC,
    TEMPLATE,
    JobRequest,
    ModelSpec,
    TemplateCatalogue,
    build_models,
)
from core.credits import CreditLedger
from core.engine import JobEngine
from core.errors import LokizError
from core.jobs import Job, JobStore
from core.media import ffmpeg
from core.media.capture import capture_frame
from core.media.edit import trim_clip
from core.media.probe import probe, probe_image
from core.media.timestamps import check_in_range, parse_timestamp
from core.media_store import MediaStore
from core.notify import OutputMedia, Receipt
from core.screens import Screen
from core.settings import Settings
from core.storage import open_database
from core.studio.requests import (
    clean_prompt,
    glitch_request,
    music_request,
    preset_options,
    template_request,
)
from core.users import UserDirectory

ACTIONS = {"template": TEMPLATE, "glitch-animate": GLITCH_ANIMATE,
           "glitch-replace": GLITCH_REPLACE, "music": MUSIC}


class RenderFailed(LokizError):
    key = "error.generic"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("render", help="run one job on the configured backend")
    parser.add_argument("action", choices=tuple(ACTIONS))
    parser.add_argument("name", nargs="?", help="template id (for `render template`)")
    parser.add_argument("--video", type=Path, help="source video (template)")
    parser.add_argument("--at", help="moment in the video, e.g. 2.5 or 0:02.5 (template)")
    parser.add_argument("--prompt", help="custom prompt (template) or music prompt")
    parser.add_argument("--clip", type=Path, help="template clip (glitch)")
    parser.add_argument("--image", type=Path, help="your image (glitch)")
    parser.add_argument("--duration", type=int, help="clip seconds (template: 4, 6 or 8)")
    parser.add_argument("--aspect-ratio", choices=("16:9", "9:16"))
    parser.add_argument("-o", "--output", type=Path, help="where to write the result")
    parser.set_defaults(handler=handle)


class ConsoleNotifier:
    """Shows the job's status lines on stderr and writes the result to a file."""

    platform = "telegram"

    def __init__(self, output: Path) -> None:
        self.output = output
        self.started = time.monotonic()
        self.result: Path | None = None
        self.last_line = ""

    def upload_limit(self, job: Job) -> int:
        return 1 << 40

    async def show_status(self, job: Job, screen: Screen) -> str | None:
        line = screen.text.splitlines()[0]
        if line != self.last_line:
            print(f"[{time.monotonic() - self.started:6.1f}s] {line}", file=sys.stderr, flush=True)
            self.last_line = line
        return "console"

    async def deliver(self, job: Job, media: OutputMedia, screen: Screen) -> Receipt:
        self.output.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(media.path, self.output)
        self.result = self.output
        return Receipt(message_id="console")


async def handle(args: argparse.Namespace, settings: Settings) -> int:
    ffmpeg.configure(ffmpeg_binary=settings.ffmpeg_binary)
    action = ACTIONS[args.action]
    models = build_models(settings)
    spec = models[action]
    templates = TemplateCatalogue.load(settings.templates_file)
    with tempfile.TemporaryDirectory(prefix="lokiz-render-") as scratch:
        work = Path(scratch)
        request = await _request(args, action, templates, settings, work, models)
        output = args.output or Path(f"{args.name or args.action}{spec.output_suffix}")
        if spec.output_kind == "video" and output.suffix.lower() != ".mp4":
            output = output.with_suffix(".mp4")
        db = await open_database(f"sqlite:///{work / 'render.db'}")
        ledger = CreditLedger(db, UserDirectory(db), starter_credits=spec.price)
        user, _ = await ledger.ensure_user("telegram", "0", display_name="render")
        backend = make_backend(settings, MediaStore(settings.media_dir))
        notifier = ConsoleNotifier(output)
        jobs = JobStore(db, ledger)
        engine = JobEngine(
            jobs=jobs, ledger=ledger, models=models, backend=backend,
            notifiers={"telegram": notifier}, media_dir=work / "media", templates=templates,
            timeout=settings.job_timeout_seconds, status_interval=1.0, progress_every=2.0,
        )
        print(f"rendering {args.action}{' ' + args.name if args.name else ''} on the "
              f"{backend.name} backend ({spec.model_id})", file=sys.stderr)
        try:
            await engine.start()
            job = await engine.submit(user_id=user.id, platform="telegram", chat_id="0",
                                      language="en", request=request)
            while True:
                current = await jobs.get(job.id)
                assert current is not None
                if current.status in ("delivered", "failed", "canceled", "timed_out"):
                    break
                await asyncio.sleep(0.2)
        finally:
            await engine.stop()
            await backend.close()
            await db.close()
        if current.status != "delivered":
            raise RenderFailed(f"the job ended {current.status}: {current.error_detail or current.error_class}")
    print(output)
    return 0


async def _request(args: argparse.Namespace, action: str, templates: TemplateCatalogue,
                   settings: Settings, work: Path, models: dict[str, ModelSpec]) -> JobRequest:
    """The job as the studio would build it (core.studio.requests), from the command line."""
    seed = int(time.time()) % 100000
    if action == TEMPLATE:
        if not args.video or args.at is None:
            raise RenderFailed("render template needs --video and --at")
        info = await probe(args.video, max_seconds=settings.max_video_seconds)
        at = check_in_range(parse_timestamp(args.at), info.duration)
        frame = await capture_frame(args.video, at, work / "frame.jpg")
        template = templates.get(args.name) if args.name else None
        if template is None and not args.prompt:
            raise RenderFailed("render template needs a template NAME or --prompt")
        options: dict[str, Any] = preset_options(template, models[TEMPLATE]) if template is not None else {}
        if args.duration is not None:
            options["duration"] = args.duration
        if args.aspect_ratio:
            options["aspect_ratio"] = args.aspect_ratio
        prompt = clean_prompt(args.prompt or (template.prompt["en"] if template else ""))
        return template_request(str(frame), template=template, prompt=prompt, options=options, seed=seed)
    if action in (GLITCH_ANIMATE, GLITCH_REPLACE):
        if not args.clip or not args.image:
            raise RenderFailed(f"render {args.action} needs --clip and --image")
        await probe(args.clip, max_seconds=settings.max_video_seconds)
        await probe_image(args.image)
        clip = await trim_clip(args.clip, 0.0, settings.glitch_max_seconds, work / "clip.mp4")
        return glitch_request(action, str(args.image), str(clip), seed=seed)
    if not args.prompt:
        raise RenderFailed("render music needs --prompt")
    return music_request(clean_prompt(args.prompt), seed=seed)
