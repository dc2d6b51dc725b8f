"""`python -m bot render …` and `templates`, as an operator runs them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from core.media.probe import probe
from tests.fakes.replicate import FakeReplicate

ROOT = Path(__file__).resolve().parents[1]


async def render(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "render", *args, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "MEDIA_DIR": str(tmp_path / "media"), **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, out.decode(), err.decode()


async def test_render_template_offline_writes_a_playable_clip(tmp_path, av_video):
    code, out, err = await render(tmp_path, "template", "ai_hug", "--video", str(av_video), "--at", "1.5",
                                  "-o", str(tmp_path / "out.mp4"))
    assert code == 0, err
    info = await probe(tmp_path / "out.mp4")
    assert info.has_video and abs(info.duration - 6) < 0.5  # AI hug is a 6 s template
    assert "local backend" in err and "generating" in err


async def test_render_template_on_replicate_settings_uses_the_api(tmp_path, av_video):
    async with FakeReplicate(default_delay=0.2) as fake:
        fake.set_media("google/veo-3-fast", av_video)
        code, out, err = await render(
            tmp_path, "template", "ai_hug", "--video", str(av_video), "--at", "0:02", "-o", "clip.mp4",
            env={"REPLICATE_API_TOKEN": fake.token, "REPLICATE_BASE_URL": fake.api_url},
        )
        assert code == 0, err
        [prediction] = fake.predictions_of("google/veo-3-fast")
        assert prediction.input["duration"] == 6
    assert (await probe(tmp_path / "clip.mp4")).has_video
    assert fake.token not in err + out


async def test_render_glitch_and_music_offline(tmp_path, av_video, photo):
    code, _, err = await render(tmp_path, "glitch-replace", "--clip", str(av_video), "--image", str(photo),
                                "-o", "g.mp4")
    assert code == 0, err
    assert (await probe(tmp_path / "g.mp4")).has_video
    code, out, err = await render(tmp_path, "music", "--prompt", "lofi rain", "-o", "song")
    assert code == 0, err
    assert Path(tmp_path / out.strip()).stat().st_size > 10_000


async def test_render_bad_input_is_one_clear_line(tmp_path, av_video, bad_files):
    code, _, err = await render(tmp_path, "template", "ai_hug", "--video", str(av_video), "--at", "99")
    assert code != 0 and err.strip().count("\n") == 0 and "error:" in err
    code, _, err = await render(tmp_path, "template", "no_such", "--video", str(av_video), "--at", "1")
    assert code != 0 and "no_such" in err
    code, _, err = await render(tmp_path, "template", "ai_hug", "--video", str(bad_files.text), "--at", "1")
    assert code != 0 and err.strip().count("\n") == 0


def test_templates_lists_the_catalogue_in_both_languages(tmp_path):
    def run(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", "bot", "templates", *args], cwd=tmp_path, text=True,
                              capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True).stdout
    english, korean = run(), run("--lang", "ko")
    assert len(english.splitlines()) >= 8
    assert "AI hug" in english and "Dance motion" in english
    assert "AI 포옹" in korean and "댄스 모션" in korean


def test_an_operator_edited_catalogue_is_used(tmp_path):
    custom = tmp_path / "mine.json"
    custom.write_text('{"templates": [{"id": "wave", "name": {"en": "Wave"}, "description": {"en": "Waves"},'
                      ' "prompt": {"en": "waving hello"}, "look": "shake"}]}')
    result = subprocess.run([sys.executable, "-m", "bot", "templates"], cwd=tmp_path, text=True, capture_output=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "TEMPLATES_FILE": str(custom)})
    assert result.stdout.startswith("wave") and "Waves" in result.stdout
    custom.write_text("{not json")
    broken = subprocess.run([sys.executable, "-m", "bot", "templates"], cwd=tmp_path, text=True,
                            capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT), "TEMPLATES_FILE": str(custom)})
    assert broken.returncode != 0 and "TEMPLATES_FILE" in broken.stderr
