"""Helpers of the import system tests: a stack, users, realistic files, polling."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from stack import Stack, add_user
from system_client import login

from jauge_testkit.import_files import InvoiceSpec, make_interchange, sample_invoice

TERMINAL = {"completed", "failed", "cancelled"}
USERS = {"alice": "agent", "bob": "agent", "root": "admin"}


def start_import_stack(
    make_stack: Callable[..., Stack], env: dict[str, str], *, replicas: int = 1, **extra: str
) -> Stack:
    """progress-svc, `replicas` import-svc and a gateway (colis-svc is not needed here)."""
    stack = make_stack(**extra)
    stack.start("progress-svc")
    for _ in range(replicas):
        stack.start("import-svc")
    stack.start("gateway")
    for name, role in USERS.items():
        add_user({**env, **extra}, name, role, f"{name}-password")
    stack.wait_ready()
    return stack


@dataclass
class Api:
    """One user's view of the gateway."""

    client: httpx.AsyncClient
    token: str

    @classmethod
    async def login(cls, base_url: str, user: str) -> Api:
        token = await login(base_url, user, f"{user}-password")
        client = httpx.AsyncClient(
            base_url=base_url, timeout=30, headers={"Authorization": f"Bearer {token}"}
        )
        return cls(client, token)

    async def start(self, kind: str = "edi") -> str:
        response = await self.client.post("/api/imports", json={"kind": kind})
        assert response.status_code == 202, response.text
        return str(response.json()["job_id"])

    async def upload(self, kind: str, files: dict[str, bytes]) -> httpx.Response:
        return await self.client.post(
            "/api/imports/upload",
            data={"kind": kind},
            files=[
                ("files", (name, data, "application/octet-stream")) for name, data in files.items()
            ],
        )

    async def job(self, job_id: str) -> dict[str, Any] | None:
        response = await self.client.get(f"/api/jobs/{job_id}")
        return response.json() if response.status_code == 200 else None

    async def until(
        self, job_id: str, predicate: Callable[[dict[str, Any]], bool], timeout_s: float = 90.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        job: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            job = await self.job(job_id)
            if job is not None and predicate(job):
                return job
            await asyncio.sleep(0.1)
        raise AssertionError(f"job {job_id} never matched; last seen: {job}")

    async def finished(self, job_id: str, timeout_s: float = 90.0) -> dict[str, Any]:
        return await self.until(job_id, lambda j: j["status"] in TERMINAL, timeout_s)

    async def close(self) -> None:
        await self.client.aclose()


def edi_batch(n_files: int, *, seed: int = 0) -> dict[str, tuple[bytes, list[InvoiceSpec]]]:
    """`n_files` realistic interchanges: 1–3 messages each, some credit notes, 3 suppliers."""
    batch: dict[str, tuple[bytes, list[InvoiceSpec]]] = {}
    for i in range(n_files):
        specs = [
            sample_invoice(
                i % 3 + 1,
                f"{'AV' if (i + m) % 5 == 4 else 'F'}{seed}-{i:04d}-{m}",
                n_lines=1 + (i + m) % 4,
                credit_note=(i + m) % 5 == 4,
                seed=seed,
            )
            for m in range(1 + i % 3)
        ]
        data = make_interchange(specs, ref=f"I{seed}{i:04d}", syntax="UNOC")
        batch[f"fournisseur-{i:04d}.edi"] = (data, specs)
    return batch


def write_inbox(data_dir: Path, kind: str, files: dict[str, bytes]) -> None:
    inbox = data_dir / "inbox" / kind
    inbox.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (inbox / name).write_bytes(data)


def bad_edi_files(big_mb: int = 50) -> dict[str, bytes]:
    """One of each way a supplier file goes wrong (DESIGN.md, point 5 of the issue)."""
    good = sample_invoice(7, "F-BAD-1", n_lines=2)
    unbalanced = replace(good, net_delta=Decimal("5.00"))
    # many tiny segments: refused on the segment limit before being tokenised
    segment = b"FTX+AAI+++Ligne de commentaire'\n"
    big = b"UNA:+.? '\nUNB+UNOC:3+S:14+R:14+240301:0830+BIG'\n" + segment * (
        big_mb * 1024 * 1024 // len(segment)
    )
    return {
        "vide.edi": b"",
        "binaire.edi": bytes(range(256)) * 64,
        "utf16.edi": make_interchange([good], ref="U16").decode("latin-1").encode("utf-16"),
        "tronque.edi": make_interchange([good, good], ref="TR", truncated=True),
        "totaux-faux.edi": make_interchange([unbalanced], ref="TF"),
        "enorme.edi": big,
    }


def expected_documents(specs: list[InvoiceSpec]) -> dict[tuple[str, str], dict[str, Any]]:
    """By (supplier, number); a later message with the same key replaces an earlier one."""
    return {(s.supplier_id, s.number): s.expected().to_document() for s in specs}


def assert_each_file_imported_once(
    import_db: Any,
    data_dir: Path,
    job_id: str,
    batch: dict[str, tuple[bytes, list[InvoiceSpec]]],
    *,
    rejected: tuple[str, ...] = (),
) -> dict[tuple[str, str], dict[str, Any]]:
    """Nothing lost, nothing twice: every invoice of `batch` stored exactly once, one
    file result per file of the job (`rejected` ones included), the good files archived
    and the inbox empty. Returns the expected invoice documents."""
    expected = expected_documents([s for _, specs in batch.values() for s in specs])
    stored = Counter((d["supplier_id"], d["number"]) for d in import_db["invoices"].find())
    assert stored == Counter(set(expected)), stored
    results = import_db["file_results"].find({"_id": {"$regex": f"^{job_id}/"}})
    assert sorted(r["_id"].split("/", 1)[1] for r in results) == sorted([*batch, *rejected])
    archived = (data_dir / "archive" / "edi").rglob("*.edi")
    assert sorted(p.name for p in archived) == sorted(batch)
    assert not any((data_dir / "inbox" / "edi").iterdir())
    return expected
