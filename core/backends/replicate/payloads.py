"""Replicate's JSON shapes: model references, prediction payloads, input matching."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.backends.base import BackendError, Prediction

# Official models answer with an internal model name (e.g. "replicate-internal/…").
_INTERNAL_OWNER = "replicate-internal/"
PREDICTION_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


@dataclass(frozen=True)
class ModelRef:
    """`owner/name` (official model) or `owner/name:version` (pinned community model)."""

    owner: str
    name: str
    version: str | None = None

    @classmethod
    def parse(cls, ref: str) -> ModelRef:
        match = re.fullmatch(r"([^/:\s]+)/([^/:\s]+)(?::([A-Za-z0-9._-]+))?", ref.strip())
        if not match:
            raise BackendError(f"not a Replicate model reference: {ref!r}")
        return cls(match.group(1), match.group(2), match.group(3))

    @property
    def slug(self) -> str:
        return f"{self.owner}/{self.name}"


def parse_prediction_payload(payload: Any) -> Prediction:
    """A prediction JSON object (a GET answer or a webhook body) as a `Prediction`.

    The status is taken as sent, including `aborted`, which the client's own
    model cannot represent.
    """
    if not isinstance(payload, Mapping):
        raise BackendError("prediction payload is not an object")
    prediction_id = payload.get("id")
    status = payload.get("status")
    if not isinstance(prediction_id, str) or not prediction_id:
        raise BackendError("prediction payload has no id")
    if not isinstance(status, str) or not status:
        raise BackendError(f"prediction {prediction_id} has no status")
    error = payload.get("error")
    logs = payload.get("logs")
    metrics = payload.get("metrics")
    return Prediction(
        id=prediction_id,
        status=status.strip().lower(),
        output=payload.get("output"),
        error=None if error in (None, "") else str(error),
        logs=logs if isinstance(logs, str) else "",
        metrics=dict(metrics) if isinstance(metrics, Mapping) else {},
    )


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def same_model(ref: ModelRef, item: Mapping[str, Any]) -> bool:
    """Whether a listed prediction ran `ref`."""
    listed_model = item.get("model")
    listed_version = item.get("version")
    if ref.version:
        return listed_version == ref.version or listed_version == f"{ref.slug}:{ref.version}"
    return listed_model == ref.slug or (
        isinstance(listed_model, str) and listed_model.startswith(_INTERNAL_OWNER)
    )


def canonical(inputs: Mapping[str, Any]) -> str:
    """Inputs as one comparable string (key order and spacing do not matter)."""
    return json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)


def json_safe(key: str, value: Any) -> Any:
    if isinstance(value, tuple):
        value = list(value)
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        raise BackendError(f"input {key!r} is not JSON-safe") from None
    return value


def reject_local_paths(inputs: Mapping[str, Any]) -> None:
    for key, value in inputs.items():
        if isinstance(value, Path):
            raise BackendError(f"input {key!r} is a local file; call prepare() first")
