"""The Replicate backend (package): api, payloads, files, backend, webhooks."""

from core.backends.replicate.backend import *  # noqa: F403
from core.backends.replicate.backend import (
    OutputTooLarge,
    ReplicateBackend,
    TokenBucket,
    extract_output_url,
    parse_prediction_payload,
)

__all__ = [
    "OutputTooLarge",
    "ReplicateBackend",
    "TokenBucket",
    "extract_output_url",
    "parse_prediction_payload",
]
