"""The generation port: what the job engine needs from a backend.

A backend turns model inputs into a prediction that the engine can poll,
cancel and download. Replicate and the local ffmpeg backend implement it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

# Replicate's prediction statuses; the local backend speaks the same words.
STARTING = "starting"
PROCESSING = "processing"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELED = "canceled"
ABORTED = "aborted"
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELED, ABORTED})


@dataclass(frozen=True)
class Prediction:
    """A backend's view of one prediction."""

    id: str
    status: str
    output: Any = None
    error: str | None = None
    logs: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL


class BackendError(Exception):
    """A backend call failed. `retryable` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.status = status


class PredictionLost(BackendError):
    """The backend no longer knows this prediction (e.g. local work lost in a restart)."""


class OutputMissing(BackendError):
    """The prediction succeeded but its output is absent, malformed or gone."""


class Backend(Protocol):
    """What the job engine calls. `inputs` values that are `Path`s are local files to send."""

    name: str
    supports_webhooks: bool

    async def prepare(self, job_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
        """Upload local files; return inputs that `create` can send (JSON-safe, storable)."""
        ...

    async def create(
        self, job_id: str, model: str, inputs: dict[str, Any], *, webhook_url: str | None = None
    ) -> str:
        """Start a prediction and return its id; never creates two for one call."""
        ...

    async def find_existing(self, model: str, inputs: dict[str, Any]) -> str | None:
        """The id of a prediction already created with exactly these inputs, if any."""
        ...

    async def get(self, prediction_id: str) -> Prediction: ...

    async def cancel(self, prediction_id: str) -> None: ...

    async def download(self, output_url: str, dest: Path, *, max_bytes: int) -> Path:
        """Stream an output to `dest` (refusing more than `max_bytes`); return the path."""
        ...

    async def close(self) -> None: ...
