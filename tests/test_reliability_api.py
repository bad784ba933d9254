"""The gateway's API under inputs nobody planned for, on one real stack.

First schemathesis, from the served /openapi.json, against the real gateway process
(not an in-process ASGI app: the broker, the store and the services answer for real);
then hand-made hostile inputs: huge bodies, wrong content types, odd unicode, file names
that climb out of their folder, and a decompression bomb as a parcel photo.
"""

from __future__ import annotations

import asyncio
import json
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation import GenerationMode
from stack import Stack, add_user
from system_client import login
from system_colis_support import FAST, FORM, TERMINAL, SharedStack, shared_environment

from jauge_shared.contracts import (
    ColisData,
    CreateColis,
    ImportFile,
    ImportKind,
    ImportStarted,
    RequestImport,
    RetryColisTask,
)
from jauge_shared.topology import (
    ALL_QUEUES,
    COLIS_ACCEPTED,
    COLIS_CONTROL,
    COLIS_TASKS,
    DEAD_LETTER_QUEUE_HEADER,
    DEAD_LETTER_REASON_HEADER,
    IMPORT_FILES,
    IMPORT_REQUESTS,
    PROGRESS_EVENTS,
    QueueSpec,
)

pytestmark = pytest.mark.system

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# A stream never ends, so a generated call would hang until its timeout; logout only
# clears a cookie this client does not use.
EXCLUDED_PATHS = ("/api/jobs/{job_id}/stream", "/api/auth/logout")
# Per operation and generation mode: enough to reach each status a route documents,
# little enough that the whole run stays near a minute on a loaded machine.
MAX_EXAMPLES = 25


@pytest.fixture(scope="module")
def api(servers: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedStack]:
    tmp = tmp_path_factory.mktemp("reliability-api")
    env, remove = shared_environment(servers, tmp)
    env.update(FAST)
    stack = Stack(env=env, log_dir=tmp / "logs", free_ports=True)
    try:
        stack.start_all()
        stack.wait_ready(timeout_s=120)
        add_user(env, "alice", "agent", "alice-password")
        add_user(env, "root", "admin", "root-password")
        yield SharedStack(stack, env)
    finally:
        stack.stop_all()
        remove()


@pytest.fixture(scope="module")
async def alice_headers(api: SharedStack) -> dict[str, str]:
    return {"Authorization": f"Bearer {await login(api.gateway, 'alice', 'alice-password')}"}


def run_operation(operation: Any, mode: GenerationMode, headers: dict[str, str]) -> str | None:
    """Generated calls of one operation, checked; the first failure as text, or None.

    No shrinking: each call goes to real processes, and the first failing case already
    says what is wrong.
    """

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def generated(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS, timeout=30)

    try:
        generated()
    except Unsatisfiable:
        return None  # no negative case exists for an operation without inputs
    except (Exception, BaseExceptionGroup) as e:  # schemathesis groups its failures
        return f"{operation.label} [{mode.value}]: {e}"
    return None


# tests/test_security_api_conformance.py runs schemathesis with every check, positive and
# negative cases, in `make test`; this in-process run is the slower duplicate of it
@pytest.mark.slow
def test_schemathesis_finds_nothing_on_the_gateway(api: SharedStack, alice_headers) -> None:
    schema = schemathesis.openapi.from_url(api.gateway + "/openapi.json")
    schema = schema.exclude(path=list(EXCLUDED_PATHS))
    failures = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failure = run_operation(operation, mode, alice_headers)
            if failure:
                failures.append(failure)
    assert operations > 20  # the schema was read, not an empty document
    assert not failures, "\n\n".join(failures)
    assert httpx.get(api.gateway + "/healthz").status_code == 200


# --- hostile inputs, by hand -------------------------------------------------------------

TEN_MB = 10 * 1024 * 1024


def assert_refused(response: httpx.Response, *codes: int) -> None:
    """Refused with one of `codes` and a JSON `detail` (French text), never a 5xx."""
    assert response.status_code in codes, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json")
    assert isinstance(response.json()["detail"], str) and response.json()["detail"]


def still_healthy(api: SharedStack) -> None:
    assert httpx.get(api.gateway + "/healthz", timeout=10).status_code == 200
    assert httpx.get(api.gateway + "/readyz", timeout=10).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        # valid JSON, one huge string where an enum is expected
        pytest.param(json.dumps({"kind": "x" * TEN_MB, "type_lot": "x" * TEN_MB}), id="string"),
        # valid JSON, ten million bytes of nesting-free array
        pytest.param("[" + ",".join(["1"] * (TEN_MB // 2)) + "]", id="array"),
        # not JSON at all
        pytest.param("{" * TEN_MB, id="garbage"),
    ],
)
async def test_ten_megabytes_of_json_are_refused_without_harm(
    api: SharedStack, alice_headers, body: str
) -> None:
    async with httpx.AsyncClient(base_url=api.gateway, headers=alice_headers, timeout=60) as c:
        for path in ("/api/imports", "/api/lots"):
            response = await c.post(
                path, content=body.encode(), headers={"Content-Type": "application/json"}
            )
            # refused on its declared length, before a byte of it is parsed
            assert_refused(response, 413)
            assert response.json()["detail"].startswith("Requête trop volumineuse")
    still_healthy(api)


async def test_wrong_content_types_are_refused_in_french(api: SharedStack, alice_headers) -> None:
    async with httpx.AsyncClient(base_url=api.gateway, headers=alice_headers, timeout=30) as c:
        for path, body in (("/api/imports", '{"kind": "edi"}'), ("/api/lots", '{"type_lot": "x"}')):
            plain = await c.post(path, content=body, headers={"Content-Type": "text/plain"})
            assert_refused(plain, 415, 422)
        lot = (await c.post("/api/lots", json={"type_lot": "cargo"})).json()
        as_json = await c.post(f"/api/lots/{lot['id']}/colis", json=FORM)
        assert_refused(as_json, 400, 415, 422)
        upload = await c.post("/api/imports/upload", json={"kind": "edi", "files": []})
        assert_refused(upload, 400, 415, 422)
        # multipart that claims a boundary it never uses
        broken = await c.post(
            "/api/imports/upload",
            content=b"--nope\r\n\r\n",
            headers={"Content-Type": "multipart/form-data; boundary=other"},
        )
        assert_refused(broken, 400, 422)
    still_healthy(api)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("nul\x00inside", id="nul"),
        pytest.param("\u202eelif.exe\u202c", id="rtl-override"),
        pytest.param("colis 📦👩🏽‍🚀", id="emoji"),
        pytest.param("e\u0301\u0301\u0301" * 300, id="combining"),
    ],
)
async def test_unicode_edge_cases_in_fields(api: SharedStack, alice_headers, text: str) -> None:
    async with httpx.AsyncClient(base_url=api.gateway, headers=alice_headers, timeout=30) as c:
        lot = (await c.post("/api/lots", json={"type_lot": "cargo"})).json()
        response = await c.post(f"/api/lots/{lot['id']}/colis", data={**FORM, "description": text})
        # accepted as text, or refused for its length: never a 5xx
        assert response.status_code in (202, 422), response.text
        if response.status_code == 202:
            task = await wait_task(c, response.json()["task_id"])
            assert task["step_status"] == "completed", task
        clients = await c.post("/api/clients", json={"nom": text, "id": "x"})
        assert clients.status_code < 500, clients.text
    still_healthy(api)


async def test_lone_surrogates_in_json_are_refused(api: SharedStack, alice_headers) -> None:
    """`"\\ud800"` is valid JSON text but no Unicode string: it must not reach the store."""
    async with httpx.AsyncClient(base_url=api.gateway, headers=alice_headers, timeout=30) as c:
        lot = (await c.post("/api/lots", json={"type_lot": "cargo"})).json()
        for path, body in (
            ("/api/lots", b'{"type_lot": "\\ud800"}'),
            ("/api/clients", b'{"nom": "\\ud800\\udfff\\ud800", "id": "\\udc00"}'),
            ("/api/tasks/t1/retry", b'{"colis_data": {"description": "\\ud800"}}'),
        ):
            response = await c.post(
                path, content=body, headers={"Content-Type": "application/json"}
            )
            assert 400 <= response.status_code < 500, (path, response.text)
        assert (await c.get(f"/api/lots/{lot['id']}")).status_code == 200
    still_healthy(api)


async def test_an_upload_name_climbing_out_of_its_folder_is_refused(
    api: SharedStack, alice_headers
) -> None:
    # other tests of this module (schemathesis) may leave accepted uploads still queued
    before = set(escapes(api.data_dir))
    async with httpx.AsyncClient(base_url=api.gateway, headers=alice_headers, timeout=30) as c:
        for name in ("../../escape.edi", "..\\..\\escape.edi", "/etc/escape.edi", ".hidden"):
            response = await c.post(
                "/api/imports/upload",
                data={"kind": "edi"},
                files=[("files", (name, b"UNA:+.? '", "application/octet-stream"))],
            )
            assert_refused(response, 400)
            assert "Nom de fichier refusé" in response.json()["detail"]
    left = set(escapes(api.data_dir))
    assert left <= before and not [p for p in left if p.name == "escape.edi"], left - before


def escapes(data_dir: Path) -> list[Path]:
    """Any file the refused uploads left: an `escape.edi` anywhere near, or any upload."""
    uploads = data_dir / "uploads"
    left = [*data_dir.parent.rglob("escape.edi"), Path("/etc/escape.edi")]
    if uploads.exists():
        # uploads/colis/ holds parcel photos of other tests, uploads/<id>/ the imports'
        left += [p for p in uploads.rglob("*") if p.is_file() and p.parent.name != "colis"]
    return [p for p in left if p.exists()]


def png_bomb(side: int = 30_000) -> bytes:
    """A real 1-bit PNG of side×side white pixels: ~110 MB of rows that compress to ~110 KB
    (8 bits per pixel once decoded: 900 MB)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + b"\xff" * ((side + 7) // 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


async def wait_task(client: httpx.AsyncClient, task_id: str, timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        response = await client.get(f"/api/tasks/{task_id}")
        if response.status_code == 200:
            last = response.json()
            if last["step_status"] in TERMINAL:
                return dict(last)
        await asyncio.sleep(0.1)
    raise AssertionError(f"task {task_id} never ended; last seen: {last}")


async def test_a_decompression_bomb_photo_is_refused_from_its_header(
    api: SharedStack, alice_headers
) -> None:
    """The gateway reads the photo's header as it arrives (gateway/photo_stream.py): a
    900-megapixel image in a 110 KB file is refused there, before colis-svc sees it (its
    own check, colis_svc/domain/images.py, stays for anything that gets through)."""
    bomb = png_bomb()
    assert len(bomb) < 1024 * 1024
    async with httpx.AsyncClient(base_url=api.gateway, headers=alice_headers, timeout=30) as c:
        lot = (await c.post("/api/lots", json={"type_lot": "cargo"})).json()
        refused = await c.post(
            f"/api/lots/{lot['id']}/colis",
            data=FORM,
            files={"image": ("bomb.png", bomb, "image/png")},
        )
        assert_refused(refused, 413)
        assert "image trop grande" in refused.json()["detail"]
        # nothing of it is left on disk, and the next parcel goes through
        assert not [p for p in (api.data_dir / "uploads" / "colis").glob("*") if p.is_file()]
        after = await c.post(f"/api/lots/{lot['id']}/colis", data=FORM)
        assert after.status_code == 202, after.text
        assert (await wait_task(c, after.json()["task_id"]))["step_status"] == "completed"
    assert api.stack.service("colis-svc").process.poll() is None
    still_healthy(api)


# --- poison messages on every durable queue ------------------------------------------------


def versioned_sample(spec: QueueSpec) -> dict[str, Any] | None:
    """A valid message for the queue's first routing key, or None for the request/reply
    queues, whose contracts carry no `version` (the gateway and the service ship together)."""
    samples = {
        IMPORT_REQUESTS.name: RequestImport(
            producer="poison", job_id="p-1", kind=ImportKind.EDI, user_id="alice"
        ),
        IMPORT_FILES.name: ImportFile(
            producer="poison", job_id="p-1", kind=ImportKind.EDI, item="nope.edi", index=0
        ),
        COLIS_TASKS.name: CreateColis(
            producer="poison",
            job_id="p-1",
            task_id="p-1",
            user_id="alice",
            lot_id="nope",
            colis_data=ColisData.model_validate(FORM),
        ),
        COLIS_CONTROL.name: RetryColisTask(
            producer="poison", job_id="p-1", task_id="p-1", user_id="alice"
        ),
        PROGRESS_EVENTS.name: ImportStarted(
            producer="poison",
            job_id="p-1",
            kind=ImportKind.EDI,
            user_id="alice",
            title="x",
            total=1,
        ),
    }
    samples[COLIS_ACCEPTED.name] = samples[COLIS_TASKS.name]  # the same commands
    sample = samples.get(spec.name)
    return None if sample is None else sample.model_dump(mode="json")


def poison_bodies(spec: QueueSpec) -> dict[str, bytes]:
    bodies = {
        "invalid JSON": b'{"type": "import.request", "job_id": ',
        "wrong schema": json.dumps({"type": spec.routing_keys[0], "job_id": 42}).encode(),
    }
    sample = versioned_sample(spec)
    if sample is not None:
        bodies["unknown version"] = json.dumps({**sample, "version": 99}).encode()
    return bodies


async def dead_letters(channel: aio_pika.abc.AbstractChannel, dlq: str, count: int) -> list:
    """Up to `count` messages from `dlq` (acked), waiting a while for them to arrive."""
    queue = await channel.declare_queue(dlq, passive=True)
    found: list[aio_pika.abc.AbstractIncomingMessage] = []
    deadline = time.monotonic() + 30
    while len(found) < count and time.monotonic() < deadline:
        message = await queue.get(fail=False)
        if message is None:
            await asyncio.sleep(0.2)
            continue
        await message.ack()
        found.append(message)
    return found


async def test_poison_messages_on_every_queue_are_dead_lettered_with_a_reason(
    api: SharedStack, alice_headers
) -> None:
    sent: dict[str, list[bytes]] = {}
    connection = await aio_pika.connect(api.env["JAUGE_AMQP_URL"])
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        for spec in ALL_QUEUES:
            exchange = await channel.get_exchange(spec.exchange.name)
            sent[spec.name] = list(poison_bodies(spec).values())
            for body in sent[spec.name]:
                await exchange.publish(
                    aio_pika.Message(body, content_type="application/json"),
                    routing_key=spec.routing_keys[0],
                )
        for spec in ALL_QUEUES:
            # a queue bound with the key of another's poison gets it too (colis.create
            # reaches colis-svc.tasks and colis-svc.accepted)
            expected = [
                body
                for other in ALL_QUEUES
                if other.exchange.name == spec.exchange.name
                and other.routing_keys[0] in spec.routing_keys
                and other.hash_weight is None
                for body in sent[other.name]
            ]
            if spec.hash_weight is not None:
                expected = sent[spec.name]
            found = await dead_letters(channel, spec.dlq_name, len(expected))
            assert sorted(m.body for m in found) == sorted(expected), spec.name
            for message in found:
                assert message.headers[DEAD_LETTER_QUEUE_HEADER] == spec.name
                assert str(message.headers[DEAD_LETTER_REASON_HEADER]).strip(), spec.name
    await every_queue_still_works(api, alice_headers)


async def every_queue_still_works(api: SharedStack, alice_headers: dict[str, str]) -> None:
    """One real flow after the poison, through each queue: the consumers are all there."""
    root = {"Authorization": f"Bearer {await login(api.gateway, 'root', 'root-password')}"}
    async with httpx.AsyncClient(base_url=api.gateway, headers=alice_headers, timeout=30) as c:
        # import-svc.requests, import-svc.files, progress-svc.events
        upload = await c.post(
            "/api/imports/upload",
            data={"kind": "edi"},
            files=[("files", ("after-poison.edi", b"not an EDI file", "text/plain"))],
        )
        assert upload.status_code == 202, upload.text
        job = await wait_job(c, upload.json()["job_id"])
        assert job["status"] in {"completed", "failed"} and job["processed"] == 1, job
        # import-svc.rpc (an admin's search is not short-cut by the gateway)
        invoices = await c.get("/api/invoices", headers=root)
        assert invoices.status_code == 200, invoices.text
        # colis-svc.rpc, colis-svc.tasks, colis-svc.accepted
        lot = await c.post("/api/lots", json={"type_lot": "cargo"})
        assert lot.status_code == 201, lot.text
        created = await c.post(f"/api/lots/{lot.json()['id']}/colis", data=FORM)
        task_id = created.json()["task_id"]
        task = await wait_task(c, task_id)
        assert task["step_status"] == "completed", task
        # colis-svc.control: colis-svc itself answers that a finished task has nothing to cancel
        cancel = await c.post(f"/api/tasks/{task_id}/cancel")
        assert cancel.status_code == 409, cancel.text


async def wait_job(client: httpx.AsyncClient, job_id: str, timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        response = await client.get(f"/api/jobs/{job_id}")
        if response.status_code == 200:
            last = response.json()
            if last["status"] in {"completed", "failed", "cancelled"}:
                return dict(last)
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} never ended; last seen: {last}")
