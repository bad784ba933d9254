"""What the benchmarks share: a private vhost and databases, and the stack launcher.

A benchmark never depends on pytest; it starts the same processes as `make run`, on
the local servers (or JAUGE_AMQP_URL / JAUGE_MONGO_URL), in a vhost and under a
database prefix of its own, removed at the end.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import secrets
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from pymongo import MongoClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "deploy" / "local"))

from stack import Stack  # noqa: E402

from jauge_shared.contracts import (  # noqa: E402
    FileImported,
    ImportKind,
    ImportStarted,
    stable_event_id,
)
from jauge_testkit.import_files import make_interchange, sample_invoice  # noqa: E402

REPORTS = ROOT / "reports" / "bench"
ONE_FILE = make_interchange([sample_invoice(1, "F-BENCH", n_lines=2)])


def supplier_file_dropper(data_dir: Path) -> Callable[[], None]:
    """One small supplier file dropped in the EDI inbox at each call, as an accountant's
    day has them: an import of an empty inbox is refused (409, issue 16)."""
    inbox = data_dir / "inbox" / "edi"
    inbox.mkdir(parents=True, exist_ok=True)
    numbers = itertools.count()

    def drop() -> None:
        (inbox / f"bench-{next(numbers)}.edi").write_bytes(ONE_FILE)

    return drop


@dataclass(frozen=True)
class BenchEnv:
    amqp_url: str
    mongo_url: str
    db_prefix: str
    data_dir: Path
    management_url: str

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "JAUGE_AMQP_URL": self.amqp_url,
            "JAUGE_MONGO_URL": self.mongo_url,
            "JAUGE_DB_PREFIX": self.db_prefix,
            "JAUGE_DATA_DIR": str(self.data_dir),
            "JAUGE_JWT_SECRET": "bench-secret-" + "x" * 40,
            "JAUGE_LOG_LEVEL": "WARNING",
            **extra,
        }

    def stack(self, **extra: str) -> Stack:
        return Stack(env=self.env(**extra), log_dir=self.data_dir / "logs", free_ports=True)


@contextlib.contextmanager
def bench_env() -> Iterator[BenchEnv]:
    base = urlsplit(os.environ.get("JAUGE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    mongo_url = os.environ.get("JAUGE_MONGO_URL", "mongodb://127.0.0.1:27017/")
    management = os.environ.get("JAUGE_RABBIT_MANAGEMENT_URL", f"http://{base.hostname}:15672")
    auth = (base.username or "guest", base.password or "guest")
    name = "b" + secrets.token_hex(4)
    vhost = f"jauge-{name}"
    api = httpx.Client(base_url=management, auth=auth, timeout=10)
    api.put(f"/api/vhosts/{quote(vhost, safe='')}").raise_for_status()
    api.put(
        f"/api/permissions/{quote(vhost, safe='')}/{auth[0]}",
        json={"configure": ".*", "write": ".*", "read": ".*"},
    ).raise_for_status()
    with tempfile.TemporaryDirectory(prefix="jauge-bench-") as tmp:
        env = BenchEnv(
            amqp_url=urlunsplit((base.scheme, base.netloc, "/" + quote(vhost, safe=""), "", "")),
            mongo_url=mongo_url,
            db_prefix=name,
            data_dir=Path(tmp),
            management_url=management,
        )
        try:
            yield env
        finally:
            # a vhost whose queues still hold the run's backlog takes RabbitMQ a while
            api.delete(f"/api/vhosts/{quote(vhost, safe='')}", timeout=120)
            with MongoClient(mongo_url) as client:
                for db in client.list_database_names():
                    if db.startswith(name + "_"):
                        client.drop_database(db)


# the commands by which a client reads the store (jauge_store_commands_total's names)
READ_COMMANDS = frozenset({"find", "getMore", "aggregate", "count", "distinct"})


async def metric_samples(service_url: str, family: str) -> list[Sample]:
    """The samples of one metric family on a service's /metrics, read now."""
    async with httpx.AsyncClient(base_url=service_url, timeout=10) as client:
        text = (await client.get("/metrics")).raise_for_status().text
    return [
        sample
        for found in text_string_to_metric_families(text)
        if found.name == family
        for sample in found.samples
    ]


async def store_commands(service_url: str) -> dict[str, int]:
    """The commands a service has sent to the store since it started, by name (ok and
    failed together), from its own count on /metrics (jauge_shared.mongo)."""
    counts: dict[str, int] = {}
    for sample in await metric_samples(service_url, "jauge_store_commands"):
        if sample.name == "jauge_store_commands_total":
            name = sample.labels["command"]
            counts[name] = counts.get(name, 0) + int(sample.value)
    return counts


async def http_histograms(service_url: str) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """The gateway's answer-time histograms of 2xx answers (`jauge_http_request_seconds`),
    by (method, route template): cumulative (upper bound, count) pairs, +Inf last."""
    found: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for sample in await metric_samples(service_url, "jauge_http_request_seconds"):
        labels = sample.labels
        if sample.name.endswith("_bucket") and labels["status"] == "2xx":
            key = (labels["method"], labels["route"])
            found.setdefault(key, []).append((float(labels["le"]), sample.value))
    return {key: sorted(buckets) for key, buckets in found.items()}


def histogram_quantile(
    q: float, before: list[tuple[float, float]], after: list[tuple[float, float]]
) -> float:
    """The q-quantile, in ms, of what was observed between two readings of one
    histogram, interpolated within its bucket as Prometheus's histogram_quantile does."""
    earlier = dict(before)
    counts = [(bound, n - earlier.get(bound, 0.0)) for bound, n in after]
    total = counts[-1][1] if counts else 0.0
    if total <= 0:
        return float("nan")
    rank, lower, below = q * total, 0.0, 0.0
    for bound, n in counts:
        if n >= rank:
            if bound == float("inf"):
                return lower * 1000  # beyond the last bucket: its bound, as Prometheus does
            inside = n - below
            return (lower + (bound - lower) * ((rank - below) / inside if inside else 1)) * 1000
        lower, below = bound, n
    return lower * 1000


def store_reads(commands: dict[str, int]) -> int:
    return sum(n for name, n in commands.items() if name in READ_COMMANDS)


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan")}
    ordered = sorted(values)
    cuts = (
        statistics.quantiles(ordered, n=100, method="inclusive")
        if len(ordered) > 1
        else ordered * 99
    )
    return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98]}


def write_report(name: str, data: dict[str, object]) -> Path:
    REPORTS.mkdir(parents=True, exist_ok=True)
    path = REPORTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str))
    return path


def table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)


# the parcel form the benchmarks post (a demo client that every fresh stack has)
COLIS_FORM = {
    "client_id": "cli-demo-1",
    "type_transport": "cargo",
    "longueur": "50",
    "largeur": "40",
    "hauteur": "30",
    "poids": "7.5",
    "mode_paiement": "comptant",
    "description": "bench",
}


def started(job: str, total: int, owner: str = "admin", producer: str = "bench") -> ImportStarted:
    """The import.started a benchmark publishes in place of import-svc."""
    return ImportStarted(
        producer=producer,
        job_id=job,
        kind=ImportKind.EDI,
        user_id=owner,
        title=producer,
        total=total,
    )


def file_event(job: str, index: int, producer: str = "bench") -> FileImported:
    """The index-th file.imported of `job`, with the stable id import-svc would give it."""
    name = f"f{index:06d}.edi"
    return FileImported(
        event_id=stable_event_id(job, "file", name),
        producer=producer,
        job_id=job,
        item=name,
        ok=True,
    )


def photo_of_about(kb: int) -> bytes:
    """A photo-like JPEG of about `kb` kilobytes (noise compresses like a real photo)."""
    side = 400
    while True:
        noise = Image.effect_noise((side, side * 3 // 4), 64).convert("RGB")
        gradient = Image.linear_gradient("L").resize(noise.size).convert("RGB")
        image = Image.blend(noise, gradient, 0.5)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=85)
        if buffer.tell() >= kb * 1024 or side > 6000:
            return buffer.getvalue()
        side = int(side * 1.25)
