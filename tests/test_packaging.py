"""The installed wheel (not the source tree) carries everything the bot opens at run time."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "core", "adapters")


def _tracked_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--", "pyproject.toml", "README.md", *PACKAGES],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode()
    return [name for name in listed.split("\0") if name]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the tracked sources (the worktree stays clean)."""
    source = tmp_path_factory.mktemp("src")
    for name in _tracked_files():
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-q", "-w", str(out), str(source)],
        cwd=source, env=_clean_env(), check=True, capture_output=True, timeout=240,
    )
    (built,) = out.glob("lokiz-*.whl")
    return built


def test_the_wheel_holds_every_text_data_and_migration_file(wheel: Path) -> None:
    data_files = [n for n in _tracked_files() if n.startswith(PACKAGES) and not n.endswith(".py")]
    assert any("storage/migrations/" in n for n in data_files)
    with zipfile.ZipFile(wheel) as archive:
        inside = set(archive.namelist())
    assert [n for n in data_files if n not in inside] == []


def test_an_installed_wheel_migrates_a_fresh_database(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    # The machine's packages serve as dependencies; only LOKIZ itself comes from the wheel.
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", "-q", str(wheel)],
        env=_clean_env(), check=True, capture_output=True, timeout=240,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = _clean_env(DATABASE_URL=f"sqlite:///{elsewhere / 'lokiz.db'}")
    where = subprocess.run(
        [str(python), "-c", "import core; print(core.__file__)"],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(env_dir)  # the wheel's copy, not the source tree

    run = subprocess.run(
        [str(python), "-m", "bot", "migrate"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    with sqlite3.connect(elsewhere / "lokiz.db") as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        applied = [row[0] for row in conn.execute("SELECT version FROM schema_migrations")]
    assert {"users", "ledger", "jobs", "sessions"} <= tables
    shipped = sorted((ROOT / "core" / "storage" / "migrations").glob("[0-9][0-9][0-9]_*.sql"))
    assert sorted(applied) == [int(p.name[:3]) for p in shipped]
