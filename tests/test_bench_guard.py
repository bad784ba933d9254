"""A guard on the progress pipeline's speed: a quick `make bench` inside `make test`.

progress-svc applies events to one job and to 1,000 jobs; each rate is divided by the
broker's consume ceiling measured in the same run, with progress-svc's own technique
(bench/pipeline_bench.py, `guard_figures`), so a loaded machine lowers both sides. The
test fails when a ratio falls below half of the figure docs/performance.md documents
for this quick run ("The guard"): a change that breaks the pipeline's speed is seen,
the run-to-run spread of a shared machine is not.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from benchkit import bench_env  # noqa: E402
from pipeline_bench import guard_figures  # noqa: E402

DOCUMENTED = re.compile(r"^\| `(one_job|many_jobs)` \| (\d+)% \|", re.MULTILINE)


def documented_ratios() -> dict[str, float]:
    text = (ROOT / "docs" / "performance.md").read_text()
    figures = {name: int(percent) / 100 for name, percent in DOCUMENTED.findall(text)}
    assert set(figures) == {"one_job", "many_jobs"}, "docs/performance.md lost the guard's table"
    return figures


@pytest.mark.alone  # another test's load beside it would move one side of the ratio
@pytest.mark.timeout(240)
async def test_progress_svc_keeps_at_least_half_its_documented_share_of_the_ceiling() -> None:
    documented = documented_ratios()
    with bench_env() as env:
        measured = await guard_figures(env)
    print(f"guard: {measured}")  # with -s: the figures to document
    too_slow = [
        f"{name}: {measured[name]:.0%} of the consume ceiling measured now "
        f"({measured[f'{name}_per_s']:,} events/s against {measured['consume_per_s']:,} "
        f"msg/s), below half of the {documented[name]:.0%} documented"
        for name in ("one_job", "many_jobs")
        if measured[name] < documented[name] / 2
    ]
    assert not too_slow, "progress-svc got slower: " + "; ".join(too_slow)
