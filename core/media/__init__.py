"""Media toolkit: probing, frame capture, contact sheets, fitting, trimming, music muxing.

Every operation is async, runs heavy work under `cpu_slot()`, and raises the
typed errors of `core.errors` for input a user can get wrong.
"""

from core.media.capture import capture_frame
from core.media.edit import mux_music, trim_clip
from core.media.ffmpeg import configure, cpu_slot, ffmpeg_path, run_ffmpeg
from core.media.fit import FittedVideo, fit_video
from core.media.intake import accept_video
from core.media.probe import ImageInfo, VideoInfo, probe, probe_image
from core.media.sheet import ContactSheet, contact_sheet
from core.media.timestamps import check_in_range, format_timestamp, parse_timestamp

__all__ = [
    "ContactSheet",
    "FittedVideo",
    "ImageInfo",
    "VideoInfo",
    "accept_video",
    "capture_frame",
    "check_in_range",
    "configure",
    "contact_sheet",
    "cpu_slot",
    "ffmpeg_path",
    "fit_video",
    "format_timestamp",
    "mux_music",
    "parse_timestamp",
    "probe",
    "probe_image",
    "run_ffmpeg",
    "trim_clip",
]
