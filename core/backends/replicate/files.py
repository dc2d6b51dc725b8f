"""Files to and from Replicate: input uploads, and output downloads (deleted after an hour)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import tempfile
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from core.backends.base import BackendError, OutputMissing
from core.backends.replicate.api import ReplicateApi
from core.backends.replicate.payloads import json_safe

if TYPE_CHECKING:
    from core.media_store import MediaStore

_CHUNK = 1 << 16
_WRITE_BATCH = 1 << 20


class OutputTooLarge(OutputMissing):
    """The output is bigger than the caller accepts."""


async def upload_inputs(
    api: ReplicateApi, job_id: str, inputs: Mapping[str, Any], media: MediaStore | None = None
) -> dict[str, Any]:
    """Inputs with every `Path` uploaded (once per file) and replaced by its URL.

    When the media bucket is reachable from the internet (MEDIA_PUBLIC), a file under
    MEDIA_DIR goes as a presigned URL of its shared object instead: nothing is uploaded.
    The result is JSON-safe and storable (the prepared inputs a lookup matches).
    """
    prepared: dict[str, Any] = {}
    uploaded: dict[Path, str] = {}
    for key, value in inputs.items():
        if isinstance(value, Path):
            if value not in uploaded:
                if not await asyncio.to_thread(value.is_file):
                    raise BackendError(f"input file {value.name} does not exist")
                uploaded[value] = (await _presigned(media, value)
                                   or await api.upload(value, {"job_id": job_id}))
            prepared[key] = uploaded[value]
        else:
            prepared[key] = json_safe(key, value)
    return prepared


async def _presigned(media: MediaStore | None, path: Path) -> str | None:
    """A presigned URL of `path` when the bucket is public; None: upload it."""
    if media is None:
        return None
    try:
        return await media.public_url(path)
    except ValueError:
        return None  # not under MEDIA_DIR (nothing shared holds it)


class Downloader:
    """Streams outputs to disk: no token sent, size-bounded, never a half file."""

    def __init__(
        self, *, http_timeout: float, download_timeout: float, redact: Callable[[str], str]
    ) -> None:
        self._timeout = download_timeout
        self._redact = redact
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(http_timeout, connect=min(10.0, http_timeout)),
            follow_redirects=True,
        )

    async def download(self, output_url: str, dest: Path, *, max_bytes: int) -> Path:
        """Stream an output file to `dest` (via a temporary file), at most `max_bytes`."""
        if not isinstance(output_url, str) or not _is_remote_or_data(output_url):
            raise OutputMissing(f"not an output URL: {str(output_url)[:80]!r}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if output_url.startswith("data:"):
            data = _decode_data_uri(output_url)
            if len(data) > max_bytes:
                raise OutputTooLarge(f"output is {len(data)} bytes, over {max_bytes}")
            await asyncio.to_thread(_write_atomically, dest, data)
            return dest
        try:
            return await asyncio.wait_for(self._stream_to(output_url, dest, max_bytes), self._timeout)
        except TimeoutError:
            raise BackendError("download timed out", retryable=True) from None
        except httpx.TransportError as exc:
            raise BackendError(
                self._redact(f"download failed: {type(exc).__name__}"), retryable=True
            ) from None

    async def _stream_to(self, url: str, dest: Path, max_bytes: int) -> Path:
        async with self._http.stream("GET", url) as response:
            status = response.status_code
            if status in (403, 404, 410):
                raise OutputMissing(f"output is gone (HTTP {status})", status=status)
            if status == 429 or status >= 500:
                raise BackendError(f"download: HTTP {status}", retryable=True, status=status)
            if status >= 400:
                raise OutputMissing(f"output refused (HTTP {status})", status=status)
            length = response.headers.get("content-length", "")
            if length.isdigit() and int(length) > max_bytes:
                raise OutputTooLarge(f"output is {length} bytes, over {max_bytes}")
            fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
            tmp = Path(tmp_name)
            try:
                with os.fdopen(fd, "wb") as out:
                    size = 0
                    pending = bytearray()
                    async for chunk in response.aiter_bytes(_CHUNK):
                        size += len(chunk)
                        if size > max_bytes:
                            raise OutputTooLarge(f"output is over {max_bytes} bytes")
                        pending += chunk
                        if len(pending) >= _WRITE_BATCH:
                            await asyncio.to_thread(out.write, bytes(pending))
                            pending.clear()
                    if pending:
                        await asyncio.to_thread(out.write, bytes(pending))
                if size == 0:
                    raise OutputMissing("output is empty")
                tmp.replace(dest)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        return dest

    async def close(self) -> None:
        await self._http.aclose()


def _is_remote_or_data(url: str) -> bool:
    if url.startswith("data:"):
        return "," in url
    parsed = urllib.parse.urlsplit(url)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


def _decode_data_uri(uri: str) -> bytes:
    header, _, payload = uri.partition(",")
    try:
        if header.endswith(";base64"):
            return base64.b64decode(payload, validate=True)
        return urllib.parse.unquote_to_bytes(payload)
    except (binascii.Error, ValueError):
        raise OutputMissing("output data URI is malformed") from None


def _write_atomically(dest: Path, data: bytes) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        Path(tmp_name).replace(dest)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
