"""The local generation backend and the ffmpeg renderer beside it (offline, no account)."""

from core.backends.local.backend import LocalBackend, action_for, hash_seed

__all__ = ["LocalBackend", "action_for", "hash_seed"]
