"""The job engine, split by reason to change (see engine.py for the whole story).

- outcomes.py   what a step came to (Ended, Delivered, Stopped) and JobStop
- runner.py     the prediction: prepare, create or re-attach, wait, fetch
- inbox.py      the rendezvous between webhooks and waiting jobs
- deliverer.py  fit, send, retry; the rules for sends that may have arrived
- status.py     status messages: pacing, screens, estimates
- scheduler.py  the in-process fair scheduler driving `run_job`
- engine.py     the facade: submit, cancel, run_job, and the one `finish`
"""

from core.engine.deliverer import crash_point
from core.engine.engine import (
    EngineStats,
    JobEngine,
    JobNotCancelable,
    JobNotFound,
    JobNotYours,
)
from core.engine.outcomes import Delivered, Ended, JobStop, Outcome, Stopped
from core.engine.scheduler import FairQueue, FairScheduler
from core.engine.status import StatusPacer, StatusReporter

__all__ = [
    "Delivered", "Ended", "EngineStats", "FairQueue", "FairScheduler", "JobEngine",
    "JobNotCancelable", "JobNotFound", "JobNotYours", "JobStop", "Outcome", "Stopped",
    "StatusPacer", "StatusReporter", "crash_point",
]
