"""Crash points for the fault tests, off unless a test sets `JAUGE_FAULT_POINTS`.

The hard faults of DESIGN.md's "Truth under faults" happen between two lines: a state
stored and not yet announced, a write computed and not yet sent. A test names such a
place and what happens there, and the process does it to itself the first time it
gets there (a marker file under `<data_dir>/faults/` makes it once, across restarts):

    JAUGE_FAULT_POINTS="colis.stored:completed=kill,progress.before_write=stop"

- `kill`: SIGKILL, as a crash or the OOM killer would;
- `stop`: SIGSTOP, a process frozen (a long GC pause, a VM stall) until the test sends
  SIGCONT.

A point is `name` or `name:key` (the key narrows it, a step or a job id). Production
never sets the variable, and a point costs one dict lookup.
"""

from __future__ import annotations

import logging
import os
import re
import signal
from pathlib import Path

logger = logging.getLogger("jauge.faults")

ACTIONS = {"kill": signal.SIGKILL, "stop": signal.SIGSTOP}


class FaultPoints:
    def __init__(self, spec: str, marker_dir: Path) -> None:
        self.marker_dir = marker_dir
        self._points: dict[str, signal.Signals] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            place, _, action = part.rpartition("=")
            if not place or action not in ACTIONS:
                raise ValueError(f"fault point {part!r}: expected <point>[:<key>]=kill|stop")
            self._points[place] = ACTIONS[action]

    def __bool__(self) -> bool:
        return bool(self._points)

    def hit(self, point: str, key: str = "") -> None:
        """Crash or freeze here if a test asked for it and it has not happened yet."""
        if not self._points:
            return
        # the most precise place asked for: `point:key`, or `point` for any key
        place = f"{point}:{key}" if f"{point}:{key}" in self._points else point
        action = self._points.get(place)
        if action is None:
            return
        marker = self.marker_dir / re.sub(r"[^A-Za-z0-9_.:-]", "_", place)
        self.marker_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return  # once: the restarted process goes on
        os.fsync(fd)
        os.close(fd)
        logger.warning("fault point reached", extra={"point": place, "action": action.name})
        os.kill(os.getpid(), action)


def fault_points(spec: str, data_dir: Path) -> FaultPoints:
    return FaultPoints(spec, data_dir / "faults")
