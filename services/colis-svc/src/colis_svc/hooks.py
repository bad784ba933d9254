"""A seam in the pipeline for tests: a `StepHooks` plug-in is called before each step.

Production runs with none. With `JAUGE_TEST_HOOKS=true` the service loads the test-only
plug-in `tests/colis_test_hooks.py` (found from the repository root, where the test
stacks start services), which obeys `[test:...]` directives in a parcel's description,
so one running stack can hold a task at each step or make one step fail. The plug-in is
not part of the package: an image built without `tests/` refuses to start with the
setting on, rather than run without the hooks its tests rely on.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Protocol

from jauge_shared.contracts import TaskStatus

if TYPE_CHECKING:
    from colis_svc.runs import Run

TEST_PLUGIN = "tests.colis_test_hooks"


class StepHooks(Protocol):
    async def at_step(self, run: Run, step: TaskStatus) -> None: ...


class NoHooks:
    async def at_step(self, run: Run, step: TaskStatus) -> None:
        return None


def load(test_hooks: bool) -> StepHooks:
    if not test_hooks:
        return NoHooks()
    try:
        module = importlib.import_module(TEST_PLUGIN)
    except ImportError as e:
        raise RuntimeError(
            f"JAUGE_TEST_HOOKS=true needs the test plug-in {TEST_PLUGIN} (run from the "
            "repository root); never enable it in production"
        ) from e
    hooks: StepHooks = module.DescriptionDirectives()
    return hooks
