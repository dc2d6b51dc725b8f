"""An in-memory generation backend for engine unit tests (a fake of the Backend port).

Each model id can be scripted: how long a prediction takes and how it ends.
Outputs are real files written by the test (or a tiny placeholder). `start`
is the port's own (StartOnce); this fake supplies prepare / find_existing / create.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.backends.base import (
    CANCELED,
    PROCESSING,
    SUCCEEDED,
    BackendError,
    GenerationRequest,
    OutputMissing,
    Prediction,
    PredictionLost,
    StartOnce,
    WebhooksUnsupported,
)


@dataclass
class Script:
    seconds: float = 0.05
    status: str = SUCCEEDED
    error: str | None = None
    output: Any = "default"  # "default" = file:// of the backend's output file


@dataclass
class _Run:
    id: str
    model: str
    inputs: dict[str, Any]
    started: float
    script: Script
    job_id: str = ""
    canceled: bool = False


@dataclass
class ScriptedBackend(StartOnce):
    output_file: Path
    name: str = "scripted"
    supports_webhooks: bool = False
    scripts: dict[str, Script] = field(default_factory=dict)
    runs: dict[str, _Run] = field(default_factory=dict)
    creates: list[str] = field(default_factory=list)
    gets: int = 0
    cancels: list[str] = field(default_factory=list)
    create_errors: list[BackendError] = field(default_factory=list)
    create_delay: float = 0.0  # the prediction exists at once; its id is answered this late
    forget_all: bool = False
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        StartOnce.__init__(self)

    async def _prepare(self, job_id: str, request: GenerationRequest) -> dict[str, Any]:
        return await self.prepare(job_id, dict(request.inputs))

    async def _find_created(self, job_id: str, request: GenerationRequest, inputs: dict[str, Any],
                            since: float) -> str | None:
        return await self.find_existing(request.model, inputs)

    async def _create(self, job_id: str, request: GenerationRequest, inputs: dict[str, Any],
                      webhook_url: str | None) -> str:
        return await self.create(job_id, request.model, inputs, webhook_url=webhook_url)

    async def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> Prediction:
        raise WebhooksUnsupported("the scripted backend receives no webhooks")

    async def prepare(self, job_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in inputs.items()}

    async def create(self, job_id: str, model: str, inputs: dict[str, Any], *, webhook_url: str | None = None) -> str:
        if self.create_errors:
            raise self.create_errors.pop(0)
        prediction_id = f"p{next(self._ids)}"
        self.runs[prediction_id] = _Run(
            prediction_id, model, inputs, time.monotonic(), self.scripts.get(model, Script()), job_id
        )
        self.creates.append(job_id)
        if self.create_delay:
            await asyncio.sleep(self.create_delay)  # as a real server: created, answer on its way
        return prediction_id

    def runs_of(self, job_id: str) -> list[_Run]:
        return [run for run in self.runs.values() if run.job_id == job_id]

    async def find_existing(self, model: str, inputs: dict[str, Any]) -> str | None:
        for run in self.runs.values():
            if run.model == model and run.inputs == inputs:
                return run.id
        return None

    def status_of(self, prediction_id: str) -> Prediction:
        run = self.runs[prediction_id]
        if run.canceled:
            return Prediction(run.id, CANCELED)
        if time.monotonic() - run.started < run.script.seconds:
            return Prediction(run.id, PROCESSING)
        output = run.script.output
        if output == "default":
            output = self.output_file.as_uri()
        return Prediction(run.id, run.script.status, output=output, error=run.script.error)

    async def get(self, prediction_id: str) -> Prediction:
        self.gets += 1
        if self.forget_all or prediction_id not in self.runs:
            raise PredictionLost(prediction_id)
        return self.status_of(prediction_id)

    async def cancel(self, prediction_id: str) -> None:
        self.cancels.append(prediction_id)
        if prediction_id in self.runs:
            self.runs[prediction_id].canceled = True

    async def download(self, output_url: str, dest: Path, *, max_bytes: int) -> Path:
        if not output_url.startswith("file://"):
            raise OutputMissing(output_url)
        source = Path(output_url.removeprefix("file://"))
        if not source.exists():
            raise OutputMissing("gone")
        dest.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(shutil.copyfile, source, dest)
        return dest

    async def close(self) -> None:
        pass
