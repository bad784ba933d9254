"""Every service exports its own series from start-up, at zero before the first event
(issue 14, item 6): a dashboard reads 0 rather than "no data", an alert's `increase()`
counts the first event. Before, import-svc's /metrics held no `jauge_` series at all.
"""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from stack import Stack

pytestmark = pytest.mark.system

# per service, series (name and labels) that must be there, at 0, before any work
EXPECTED: dict[str, list[tuple[str, dict[str, str]]]] = {
    "import-svc": [
        ("jauge_import_files_total", {"kind": "edi", "outcome": "imported"}),
        ("jauge_import_files_total", {"kind": "bbgr_monthly", "outcome": "failed"}),
        ("jauge_import_file_seconds_count", {"kind": "edi"}),
        ("jauge_imports_finished_total", {"kind": "edi", "status": "completed"}),
        ("jauge_state_reannounced_total", {"service": "import-svc", "reason": "asked"}),
        ("jauge_state_reannounced_total", {"service": "import-svc", "reason": "redelivered"}),
    ],
    "colis-svc": [
        ("jauge_colis_task_runs_total", {"op": "create", "outcome": "completed"}),
        ("jauge_colis_task_runs_total", {"op": "update", "outcome": "failed_permanent"}),
        ("jauge_state_reannounced_total", {"service": "colis-svc", "reason": "asked"}),
        ("jauge_state_reannounced_total", {"service": "colis-svc", "reason": "redelivered"}),
    ],
    "progress-svc": [
        ("jauge_reconciler_repairs_total", {"kind": "import"}),
        ("jauge_reconciler_repairs_total", {"kind": "colis"}),
        ("jauge_reconciler_asked_total", {"owner": "import"}),
        ("jauge_reconciler_passes_total", {"outcome": "failed"}),
        ("jauge_reconciler_stale_documents", {"owner": "import"}),
        ("jauge_reconciler_stale_documents", {"owner": "colis"}),
    ],
    "gateway": [
        ("jauge_jobs_finished_total", {"kind": "import.edi", "status": "completed"}),
        ("jauge_jobs_finished_total", {"kind": "colis.create", "status": "failed"}),
        ("jauge_job_duration_seconds_count", {"kind": "colis.create"}),
        ("jauge_gateway_rpc_requests_total", {"outcome": "timeout"}),
        ("jauge_gateway_refreshes_total", {}),
        ("jauge_ws_connections", {}),
    ],
}


def samples(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(url + "/metrics", timeout=10).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_every_service_exports_its_series_at_zero_from_start_up(make_stack) -> None:
    stack: Stack = make_stack()
    stack.start_all()
    stack.wait_ready(timeout_s=120)
    missing = {}
    for service in stack.running:
        exported = samples(service.url)
        for name, labels in EXPECTED[service.spec.name]:
            value = exported.get((name, frozenset(labels.items())))
            if value != 0:
                missing.setdefault(service.spec.name, []).append((name, labels, value))
    assert not missing, missing
