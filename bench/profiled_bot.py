"""`python -m bot` with pyinstrument running from the moment Telegram polling starts
(start-up is left out): bench/updates.py --profile OUT.html runs the full bot this way.

    python bench/profiled_bot.py OUT.html
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pyinstrument import Profiler

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.telegram.app import TelegramAdapter  # noqa: E402
from bot.cli import main  # noqa: E402

profiler = Profiler(interval=0.001, async_mode="disabled")
serve = TelegramAdapter.run


async def profiled_run(self: Any) -> None:
    profiler.start()
    try:
        await serve(self)
    finally:
        profiler.stop()
        out = Path(sys.argv[1])
        if out.suffix == ".pyisession":  # `pyinstrument --load OUT.pyisession` renders it later
            assert profiler.last_session is not None
            profiler.last_session.save(str(out))
        else:
            out.write_text(profiler.output_html() if out.suffix == ".html" else profiler.output_text())


TelegramAdapter.run = profiled_run  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main([]))
