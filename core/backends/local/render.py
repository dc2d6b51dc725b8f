"""Local stand-ins for the generation models: real, playable media made with ffmpeg.

template: camera motion over a still with a look's colour and grain;
glitch: a clip's motion or scene composited with a picture under glitch effects;
music: a synthesized track (chords, bass, drums) seeded by the prompt.
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass
from pathlib import Path

from core.media.ffmpeg import run_ffmpeg

LOOKS = (
    "warm_zoom", "dolly_out", "pan_left", "pan_right", "shake",
    "orbit", "vhs", "noir", "dreamy", "neon",
)
RENDER_FPS = 24
_CX = "(iw-iw/zoom)/2"
_CY = "(ih-ih/zoom)/2"


def _even(value: float) -> int:
    return max(2, int(round(value)) // 2 * 2)


def frame_size(aspect_ratio: str, short_side: int) -> tuple[int, int]:
    """(width, height) for "16:9" / "9:16" / "1:1"… with the given short side."""
    try:
        a, b = (float(part) for part in aspect_ratio.split(":"))
    except ValueError:
        a, b = 16.0, 9.0
    if a >= b:
        return _even(short_side * a / b), _even(short_side)
    return _even(short_side), _even(short_side * b / a)


def pick_look(look: str | None, seed: int) -> str:
    """The named look, or one chosen by the seed when the name is unknown."""
    return look if look in LOOKS else LOOKS[seed % len(LOOKS)]


@dataclass(frozen=True)
class _Look:
    zoom: str
    x: str
    y: str
    colour: str  # a filter chain from [m] to [v] (labels included)


def _look(name: str, seed: int, seconds: float) -> _Look:
    ease = "((1-cos(PI*{p}))/2)"
    rng = random.Random(seed)
    a, b, c, d = (rng.uniform(0, 6.28) for _ in range(4))
    plain = "[m]{chain}[v]"
    grain = f"noise=c0s=5:c0f=t:all_seed={seed % 100000}"
    # cheap filters only (eq is a lookup table; colorbalance, rotate, full-size edges are slow)
    luma_only = "c1_mode=normal:c2_mode=normal"  # normal at opacity 1 keeps the top's colour
    looks = {
        "warm_zoom": _Look(f"1+0.3*{ease}", _CX, _CY, plain.format(chain=(
            "eq=saturation=1.15:contrast=1.04:gamma_r=1.06:gamma_b=0.92"))),
        "dolly_out": _Look(f"1.35-0.35*{ease}", _CX, _CY, plain.format(chain=(
            "eq=contrast=1.08:saturation=1.05"))),
        "pan_left": _Look("1.25", f"(iw-iw/zoom)*(1-{ease})", _CY, plain.format(chain=(
            "eq=contrast=1.05:saturation=1.1"))),
        "pan_right": _Look("1.25", f"(iw-iw/zoom)*{ease}", _CY, plain.format(chain=(
            "eq=contrast=1.05:saturation=1.1"))),
        "shake": _Look(
            "1.12",
            f"{_CX}*(1+0.6*sin(on*0.9+{a:.2f})*sin(on*0.37+{b:.2f}))",
            f"{_CY}*(1+0.6*sin(on*1.3+{c:.2f})*sin(on*0.23+{d:.2f}))",
            plain.format(chain=f"eq=contrast=1.12:saturation=1.05,{grain}")),
        "orbit": _Look(
            "1.3+0.05*sin(2*PI*{p})",
            f"{_CX}*(1+0.8*cos(2*PI*{{p}}))",
            f"{_CY}*(1+0.8*sin(2*PI*{{p}}))",
            plain.format(chain="eq=saturation=1.1:gamma_b=1.05")),
        "vhs": _Look(f"1.05+0.1*{ease}", f"{_CX}*(1+0.15*sin(on*0.5))", _CY, plain.format(chain=(
            "eq=saturation=0.75:contrast=1.1,curves=preset=vintage,rgbashift=rh=-3:bh=3,"
            f"noise=c0s=8:c0f=t:all_seed={seed % 100000},"
            "drawgrid=w=iw:h=4:t=1:c=black@0.25"))),
        "noir": _Look(f"1.1+0.2*{ease}", _CX, f"{_CY}*(1.3-0.6*{ease})", plain.format(chain=(
            "eq=saturation=0:contrast=1.35:brightness=-0.02,vignette=angle=PI/4,"
            f"noise=c0s=6:c0f=t:all_seed={seed % 100000}"))),
        "dreamy": _Look(f"1.25-0.2*{ease}", f"{_CX}*(1+0.3*sin(2*PI*{{p}}))", _CY, (
            "[m]split[da][db];[db]gblur=sigma=10[dg];"
            f"[da][dg]blend=c0_mode=screen:c0_opacity=0.55:{luma_only},"
            "eq=saturation=1.1:brightness=0.03:gamma=1.08[v]")),
        "neon": _Look("1.15+0.15*sin(PI*{p})", f"{_CX}*(1+0.5*sin(2*PI*{{p}}))", _CY, (
            "[m]eq=saturation=1.9:contrast=1.15,hue=h=60*t,split[na][nb];"
            "[nb]scale=iw/2:ih/2,format=gray,edgedetect=low=0.08:high=0.25,"
            "scale={w}:{h},format=yuv420p[ne];"
            f"[na][ne]blend=c0_mode=addition:c0_opacity=0.8:{luma_only}[v]")),
    }
    return looks[name]


def _seed_of(*parts: object) -> int:
    digest = hashlib.sha256("|".join(map(str, parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big")


# --- music -------------------------------------------------------------------
_MINOR_WORDS = ("sad", "dark", "night", "rain", "moody", "melanch", "lofi", "lo-fi", "lonely",
                "슬", "어두", "밤", "비 ")
_FAST_WORDS = ("dance", "party", "fast", "energetic", "edm", "upbeat", "happy", "hype",
               "신나", "빠른", "댄스")
_SLOW_WORDS = ("calm", "ambient", "sleep", "chill", "relax", "slow", "soft", "잔잔", "느린")
_PROGRESSIONS = {
    "major": ((0, 1), (7, 1), (9, 0), (5, 1)),  # I–V–vi–IV (semitones, 1 = major chord)
    "minor": ((0, 0), (8, 1), (3, 1), (10, 1)),  # i–VI–III–VII
}


def music_expression(prompt: str, seed: int, *, drums: bool = True) -> str:
    """An aevalsrc expression: a four-chord loop with bass, arpeggio and (optionally) drums."""
    text = prompt.lower()
    rng = random.Random(_seed_of(text, seed))
    mode = "minor" if any(w in text for w in _MINOR_WORDS) else rng.choice(("major", "minor"))
    bpm = rng.randint(84, 112)
    if any(w in text for w in _FAST_WORDS):
        bpm = rng.randint(118, 132)
    elif any(w in text for w in _SLOW_WORDS):
        bpm = rng.randint(68, 82)
    beat = 60.0 / bpm
    root = 110.0 * 2 ** (rng.randint(0, 7) / 12)
    chords = _PROGRESSIONS[mode]
    freq = "if(eq(ld(0),0),{},if(eq(ld(0),1),{},if(eq(ld(0),2),{},{})))".format(
        *(f"{root * 2 ** (step / 12):.3f}" for step, _ in chords))
    third = "if(eq(ld(0),0),{},if(eq(ld(0),1),{},if(eq(ld(0),2),{},{})))".format(
        *("1.2599" if major else "1.1892" for _, major in chords))
    parts = [
        f"st(0,mod(floor(t/{4 * beat:.4f}),4))",
        f"st(1,{freq})",
        f"st(2,{third})",
        f"st(3,mod(t,{beat:.4f}))",
        f"st(5,mod(floor(t/{beat / 2:.4f}),3))",
        # pad: triad with a slow swell
        "st(6,0.09*(sin(2*PI*ld(1)*t)+sin(2*PI*ld(1)*ld(2)*t)+sin(2*PI*ld(1)*1.4983*t))"
        "*(0.75+0.25*sin(2*PI*t*0.25)))",
        # bass on every beat, arpeggio on every half beat
        "st(7,0.2*sin(PI*ld(1)*t)*exp(-ld(3)*2.5)"
        f"+0.07*sin(2*PI*ld(1)*if(eq(ld(5),0),2,if(eq(ld(5),1),2*ld(2),2.9966))*t)"
        f"*exp(-mod(t,{beat / 2:.4f})*7))",
    ]
    if drums:
        parts.append(
            "st(8,0.45*sin(2*PI*(45+90*exp(-ld(3)*25))*ld(3))*exp(-ld(3)*9)"
            f"+0.05*(2*random(4)-1)*exp(-mod(t+{beat / 2:.4f},{beat:.4f})*45))")
    else:
        parts.append("st(8,0)")
    parts.append("0.8*(ld(6)+ld(7)+ld(8))")
    return ";".join(parts)


async def render_music(
    out: Path, *, prompt: str, seconds: float, seed: int, drums: bool = True, timeout: float = 120
) -> Path:
    """A synthesized track of `seconds` (AAC in .m4a), the same for the same prompt and seed."""
    fade = min(1.5, seconds / 4)
    source = f"aevalsrc=exprs='{music_expression(prompt, seed, drums=drums)}':s=22050:d={seconds:.3f}"
    await run_ffmpeg(
        ["-f", "lavfi", "-i", source,
         "-af", f"aecho=0.8:0.5:180:0.2,lowpass=f=7000,afade=t=in:d=0.2,"
                f"afade=t=out:st={seconds - fade:.3f}:d={fade:.3f},aresample=44100",
         "-ac", "2", "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", "-f", "mp4", out],
        timeout=timeout,
    )
    return out


# --- template ------------------------------------------------------------------
async def render_template(
    image: Path,
    out: Path,
    *,
    seconds: float,
    aspect_ratio: str,
    short_side: int,
    look: str,
    seed: int,
    audio: bool = False,
    fps: int = RENDER_FPS,
    timeout: float = 300,
) -> Path:
    """`seconds` of camera motion over `image` with a look, as H.264 MP4 (with a soft bed if `audio`)."""
    width, height = frame_size(aspect_ratio, short_side)
    frames = max(2, round(seconds * fps))
    spec = _look(pick_look(look, seed), seed, seconds)
    progress = f"(on/{frames - 1})"

    def expr(text: str) -> str:
        return text.replace("{p}", progress)

    graph = (
        # zoompan works on a 1.5× still: enough to hide its whole-pixel steps, cheap to crop
        f"[0:v]scale={_even(1.5 * width)}:{_even(1.5 * height)}:force_original_aspect_ratio=increase,"
        f"crop={_even(1.5 * width)}:{_even(1.5 * height)},setsar=1,format=yuv420p,"
        f"zoompan=z='{expr(spec.zoom)}':x='{expr(spec.x)}':y='{expr(spec.y)}'"
        f":d={frames}:s={width}x{height}:fps={fps}[m];"
        + spec.colour.replace("{w}", str(width)).replace("{h}", str(height))
        + ";[v]scale=out_range=limited,format=yuv420p[out]"
    )
    args: list[str | os.PathLike[str]] = ["-i", image]
    if audio:
        bed = music_expression("ambient calm", seed, drums=False)
        args += ["-f", "lavfi", "-i", f"aevalsrc=exprs='{bed}':s=22050:d={seconds:.3f}"]
    args += ["-filter_complex", graph, "-map", "[out]"]
    if audio:
        args += ["-map", "1:a", "-c:a", "aac", "-b:a", "96k", "-ac", "2"]
    args += ["-frames:v", str(frames), "-c:v", "libx264", "-preset", "veryfast", "-crf", "22",
             "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-f", "mp4", out]
    await run_ffmpeg(args, timeout=timeout)
    return out


# --- glitch --------------------------------------------------------------------
async def _prepare_picture(image: Path, out: Path, graph: str, timeout: float) -> Path:
    """Scale the user's picture once (a small PNG is cheap to loop for every frame)."""
    await run_ffmpeg(["-i", image, "-vf", graph, "-frames:v", "1", "-update", "1", out],
                     timeout=timeout)
    return out


async def render_glitch(
    clip: Path,
    image: Path,
    out: Path,
    *,
    mode: str,
    seconds: float,
    clip_size: tuple[int, int],
    short_side: int,
    fps: int,
    seed: int,
    work_dir: Path,
    timeout: float = 300,
) -> Path:
    """Composite `image` with `clip` under glitch effects for `seconds`.

    mode "animate": the picture fills the frame and is warped by the clip's
    motion, with the clip's edges glowing through; mode "replace": the clip
    plays and the picture takes the centre (the subject's place), feathered.
    """
    scale = short_side / min(clip_size)
    width, height = _even(clip_size[0] * scale), _even(clip_size[1] * scale)
    rng = random.Random(seed)
    shift = rng.randint(3, 7)
    noise_seed = seed % 100000
    fit_clip = (f"fps={fps},scale={width}:{height}:force_original_aspect_ratio=increase,"
                f"crop={width}:{height},setsar=1")
    # the picture is prepared once, then repeated by the loop filter (cheaper than re-decoding)
    looped = f"[1:v]loop=loop=-1:size=1,setpts=N/{fps}/TB"
    picture = work_dir / f"{out.stem}.picture.png"
    if mode == "animate":
        await _prepare_picture(image, picture, (
            f"scale={width}:{height}:force_original_aspect_ratio=increase,"
            f"crop={width}:{height},setsar=1"), timeout)
        graph = (
            # the clip's brightness becomes a displacement map: the picture moves as the clip moves
            f"[0:v]{fit_clip},format=gray,split[g1][g2];"
            "[g1]lut=y='128+(val-128)*0.35',format=gbrp,split[xm][ym0];[ym0]negate[ym];"
            f"{looped},format=gbrp[img];"
            "[img][xm][ym]displace=edge=mirror[warped];"
            "[g2]edgedetect=low=0.08:high=0.3,format=gbrp,lutrgb=r=val*0.2:g=val*0.9:b=val[edges];"
            "[warped][edges]blend=all_mode=screen:shortest=1,"
            f"rgbashift=rh=-{shift}:bh={shift}:gv=2,drawgrid=w=iw:h=3:t=1:c=black@0.3,"
            f"noise=c0s=6:c0f=t:all_seed={noise_seed},format=yuv420p[out]"
        )
    else:
        pic_w, pic_h = _even(width * 0.62), _even(height * 0.8)
        await _prepare_picture(image, picture, (
            f"scale={pic_w}:{pic_h}:force_original_aspect_ratio=decrease,setsar=1,"
            f"rgbashift=rh={shift}:bh=-{shift}:edge=wrap,format=rgba,"
            "geq=r='r(X,Y)':g='g(X,Y)':b='b(X,Y)'"
            ":a='255*clip(4*(1-hypot((X-W/2)/(W/2),(Y-H/2)/(H/2))),0,1)'"), timeout)
        graph = (
            # the clip plays dimmed with glowing edges; the picture takes the subject's place
            f"[0:v]{fit_clip},format=yuv420p,split[bg][be];"
            "[be]format=gray,edgedetect=low=0.1:high=0.3,format=yuv420p[edges];"
            "[bg]eq=saturation=0.55:brightness=-0.06[dim];"
            # normal mode at opacity 1 keeps the top's colour: edges only lighten the luma
            "[dim][edges]blend=c0_mode=lighten:c1_mode=normal:c2_mode=normal[scene];"
            f"{looped}[subject];"
            "[scene][subject]overlay=x='(W-w)/2+W*0.03*sin(2*PI*t*0.7)'"
            ":y='(H-h)/2+H*0.025*sin(2*PI*t*1.1)':shortest=1:format=yuv420,"
            f"hue=h=25*sin(2*PI*t/3),noise=c0s=5:c0f=t:all_seed={noise_seed},"
            "drawgrid=w=iw:h=4:t=1:c=black@0.2,format=yuv420p[out]"
        )
    try:
        await run_ffmpeg(
            ["-i", clip, "-i", picture,
             "-filter_complex", graph, "-map", "[out]", "-map", "0:a:0?",
             "-t", f"{seconds:.3f}", "-c:v", "libx264", "-preset", "veryfast", "-crf", "22",
             "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k",
             "-movflags", "+faststart", "-f", "mp4", out],
            timeout=timeout,
        )
    finally:
        picture.unlink(missing_ok=True)
    return out
