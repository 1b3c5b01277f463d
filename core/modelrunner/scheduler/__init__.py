"""Runners: start on demand, keep-alive, eviction, crash recovery (see scheduler.py)."""

from .client import Lease, SchedulerClient
from .durations import format_keep_alive, parse_keep_alive
from .scheduler import Scheduler, SchedulerError

__all__ = ["Lease", "SchedulerClient", "Scheduler", "SchedulerError", "parse_keep_alive",
           "format_keep_alive"]
