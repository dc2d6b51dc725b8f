"""What one step of a job came to. Lower parts return these (or raise `JobStop` with one);
only `JobEngine.finish` records them, refunds and tells the chat."""

from __future__ import annotations

from dataclasses import dataclass

from core.jobs import EndReason, JobStatus


@dataclass(frozen=True)
class Ended:
    """The job ends unsuccessfully: recorded with its one refund (never when a send of it
    may have reached the chat), then said in the chat when `tell`."""

    status: JobStatus  # FAILED, CANCELED or TIMED_OUT
    reason: EndReason
    detail: str
    tell: bool = True


@dataclass(frozen=True)
class Delivered:
    """The result reached the chat (`unconfirmed`: a send may have arrived, none was confirmed)."""

    message_id: str | None
    file_id: str | None = None
    unconfirmed: bool = False


@dataclass(frozen=True)
class Stopped:
    """Nothing to record here. `retry`: the job is unfinished and needs another step later
    (held by another instance, no adapter for its chat yet); else it ended elsewhere."""

    why: str
    retry: bool = False


Outcome = Ended | Delivered | Stopped


class JobStop(Exception):
    """Raised by a lower part to end the step with `outcome` (caught once, in `run_job`)."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome)
        self.outcome = outcome


def failed(reason: EndReason, detail: str, *, tell: bool = True) -> Ended:
    return Ended(JobStatus.FAILED, reason, detail, tell)
