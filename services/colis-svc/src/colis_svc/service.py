"""colis-svc's rooms, built together on one repository, file store and publisher.

- `queries.py`: reads and lot/client changes the gateway asks for (typed requests);
- `pipeline.py`: one task command's run, step by step;
- `control.py`: cancel, retry, the sweeper's due retries and stalls, undo;
- `runs.py`: what those share about a task (store then announce, the endings);
- `photos.py`: a task waiting for its photo; `files.py`: uploads and processed photos;
- `hooks.py`: the pipeline's seam for the test-only plug-in (`JAUGE_TEST_HOOKS`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from colis_svc import hooks
from colis_svc.control import Control
from colis_svc.files import FileStore
from colis_svc.pipeline import Pipeline
from colis_svc.queries import ColisQueries
from colis_svc.repository import ColisRepository
from colis_svc.runs import Emit, Tasks, utc_now
from colis_svc.settings import ColisSettings


@dataclass(frozen=True)
class ColisService:
    tasks: Tasks
    pipeline: Pipeline
    control: Control
    queries: ColisQueries

    @classmethod
    def build(
        cls,
        repository: ColisRepository,
        files: FileStore,
        emit: Emit,
        settings: ColisSettings,
        clock: Callable[[], datetime] = utc_now,
        step_hooks: hooks.StepHooks | None = None,
    ) -> ColisService:
        tasks = Tasks(repository, files, emit, settings, clock)
        return cls(
            tasks=tasks,
            pipeline=Pipeline(tasks, step_hooks or hooks.load(settings.test_hooks)),
            control=Control(tasks),
            queries=ColisQueries(repository, files, emit, tasks.audit, clock),
        )
