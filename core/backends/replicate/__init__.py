"""The Replicate backend, as a package.

api: the HTTP calls and request budget · payloads: JSON shapes · files:
uploads and downloads · webhooks: verifying and reading deliveries ·
backend: `ReplicateBackend`, the generation port on Replicate.
"""

from core.backends.replicate.api import TokenBucket
from core.backends.replicate.backend import ReplicateBackend
from core.backends.replicate.files import OutputTooLarge
from core.backends.replicate.payloads import parse_prediction_payload

__all__ = ["OutputTooLarge", "ReplicateBackend", "TokenBucket", "parse_prediction_payload"]
