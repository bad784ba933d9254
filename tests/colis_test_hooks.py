"""Test-only plug-in of colis-svc's pipeline (`JAUGE_TEST_HOOKS=true`, colis_svc/hooks.py):
directives in a parcel's description, so one running stack can hold a task at each step
or make one step fail, per task.

`[test:delay=0.5]` pauses 0.5 s at each step; `[test:fail=creation:transient*2]` makes
that step fail transiently while the task has been retried fewer than 2 times
(`permanent` also exists). The system tests' SLOW_STEPS markers are `[test:delay=...]`.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING

from colis_svc.domain import PermanentTaskError, TransientTaskError
from jauge_shared.contracts import TaskStatus

if TYPE_CHECKING:
    from colis_svc.runs import Run

_DIRECTIVES = re.compile(r"\[test:([^\]]*)\]")


def directives(description: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for block in _DIRECTIVES.findall(description):
        for part in block.split(";"):
            key, _, value = part.partition("=")
            found[key.strip()] = value.strip()
    return found


class DescriptionDirectives:
    async def at_step(self, run: Run, step: TaskStatus) -> None:
        found = directives(str(run.doc.get("colis_data", {}).get("description", "")))
        if not found:
            return
        if "delay" in found:
            await asyncio.sleep(float(found["delay"]))
        target, _, rest = found.get("fail", "").partition(":")
        if target != step.value:
            return
        kind, _, count = rest.partition("*")
        # counted by the task's own retries, so every replica agrees
        if run.state.retry_count >= int(count or 1):
            return
        if kind == "transient":
            raise TransientTaskError("Panne simulée : service momentanément indisponible.")
        raise PermanentTaskError("Panne simulée : données refusées.")
