"""bench/updates.py's open loop in miniature: both bots answer every update, in both mixes."""

from __future__ import annotations

from bench.updates import OpenLoopConfig, run_open_loop


async def test_the_open_loop_bench_sees_every_update_answered_once_by_both_bots():
    said: list[str] = []
    [run] = await run_open_loop(OpenLoopConfig(rate=30, seconds=0.5, users=40, turn=0.5), out=said.append)

    for mix in ("first", "returning"):
        for bot in ("bare", "full"):
            window = run[mix][bot]
            assert window.updates > 0 and window.unanswered == 0, (mix, bot, said)
            assert len(window.latencies or []) == window.updates
            assert window.sends == window.updates, (mix, bot)  # a first contact too: one message
            assert window.cpu >= 0
    assert any("ratio full/bare" in line for line in said)
