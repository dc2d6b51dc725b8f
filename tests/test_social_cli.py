"""`python -m bot posts delete ID`: an operator takes a post out of the feed, /top and inline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from core.credits import CreditLedger
from core.social import Posts
from core.storage import open_database
from core.users import UserDirectory
from tests.test_social import GROUP_A, delivered

ROOT = Path(__file__).resolve().parents[1]


def run_bot(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], capture_output=True, text=True, cwd=cwd,
        timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )


async def test_operator_deletes_a_post_from_the_command_line(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'lokiz.db'}"
    db = await open_database(url)
    ledger = CreditLedger(db, UserDirectory(db), starter_credits=0)
    alice, _ = await ledger.ensure_user("telegram", "1", username="alice")
    bob, _ = await ledger.ensure_user("telegram", "2", username="bob")
    posts = Posts(db)
    post = await posts.record_delivered(delivered(alice, "j1", prompt="a cat"))
    await posts.toggle_like(post.id, bob.id)
    await db.close()

    env = {"DATABASE_URL": url}
    shown = run_bot("posts", "show", str(post.id), env=env, cwd=tmp_path)
    assert shown.returncode == 0 and "by @alice" in shown.stdout, shown.stderr
    done = run_bot("posts", "delete", str(post.id), env=env, cwd=tmp_path)
    assert done.returncode == 0 and "deleted" in done.stdout, done.stderr
    again = run_bot("posts", "delete", str(post.id), env=env, cwd=tmp_path)
    assert again.returncode == 0 and "already" in again.stdout
    missing = run_bot("posts", "delete", "999", env=env, cwd=tmp_path)
    assert missing.returncode == 1 and "no such post" in missing.stdout
    bad = run_bot("posts", "delete", "12x", env=env, cwd=tmp_path)
    assert bad.returncode == 2 and "not a post number" in bad.stderr

    db = await open_database(url)
    try:
        posts = Posts(db)
        assert (await posts.feed("telegram", GROUP_A)).posts == ()
        assert await posts.top("telegram", GROUP_A) == []
        assert await posts.recent_posts_of(alice.id, "cat") == []
    finally:
        await db.close()
