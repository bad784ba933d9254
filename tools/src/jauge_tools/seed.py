"""`python -m jauge_tools.seed`: fill a store with a realistic history, fast, for the
page-speed measure (docs/performance.md, "Pages on a full store"): 10,000 parcels (their
lots, clients and completed tasks' progress documents), 1,000 imports (their progress
documents and jobs) and 50,000 invoices, spread over the last 30 days and several agents,
plus the gateway's productivity counters for those days.

Bulk `insert_many` of each owner's document shapes, straight into each owner's database
(`<prefix>_colis`, `<prefix>_import`, `<prefix>_progress`, `<prefix>_gateway`): a tool
for a test store, never for production data. The users are made with `gateway.cli`.
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from pymongo import AsyncMongoClient

from colis_svc.client_names import name_key
from gateway.productivity import STEP_ORDER, agent_key, day_id
from jauge_shared.contracts import ProgressDocument, ProgressStatus
from jauge_shared.contracts.progress_lists import LISTED_MARKER, LISTS_COLLECTION, list_keys

app = typer.Typer(add_completion=False, help=__doc__)
Doc = dict[str, Any]
BATCH = 1000
CLIENTS = ("Awa Diallo", "Kofi Mensah", "Aminata Koné", "Jean Dupont", "Fatou Sow", "Paul Martin")


def _progress(**fields: Any) -> Doc:
    doc: Doc = ProgressDocument(**fields).stored()
    return doc


def parcels(n: int, agents: list[str], now: datetime, rng: random.Random) -> dict[str, list[Doc]]:
    lots, clients, colis, progress = [], [], [], []
    for i, name in enumerate(CLIENTS):
        clients.append(
            {"_id": f"seed-client-{i}", "name": name, "phone": "+33 6 00 00 00 0" + str(i)}
        )
    per_lot = 100
    for lot_index in range((n + per_lot - 1) // per_lot):
        at = now - timedelta(days=30 * (1 - lot_index * per_lot / n), minutes=5)
        lots.append(
            {
                "_id": f"seed-lot-{lot_index}",
                # colis-svc's format (domain/lots.py): the counter starts at 1
                "numero_lot": f"CARGO-{at:%Y%m%d}{lot_index + 1:03d}",
                "type_lot": "cargo",
                "statut": "ouvert",
                "created_at": at,
            }
        )
    for i in range(n):
        at = now - timedelta(days=30 * (1 - i / n))
        client = clients[i % len(clients)]
        lot = lots[i // per_lot]
        task_id, colis_id = f"seed-task-{i}", f"seed-colis-{i}"
        numero = f"TS{at:%Y%m%d}-S{i:06d}"
        colis.append(
            {
                "_id": colis_id,
                "numero_suivi": numero,
                "lot_id": lot["_id"],
                "numero_lot": lot["numero_lot"],
                "client_id": client["_id"],
                "client_name": client["name"],
                "type_transport": "cargo",
                "longueur": 40.0,
                "largeur": 30.0,
                "hauteur": 20.0,
                "poids": round(rng.uniform(1, 30), 2),
                "statut": "recu",
                "paiement": "paye",
                "description": "Colis de démonstration",
                "prix": "25.00",
                "devise": "EUR",
                "created_at": at,
                "updated_at": at,
                "task_id": task_id,
            }
        )
        progress.append(
            _progress(
                id=task_id,
                kind="colis.create",
                owner=agents[i % len(agents)],
                title=f"Colis {numero}",
                status=ProgressStatus.COMPLETED,
                step_status="completed",
                total=100,
                processed=100,
                percent=100.0,
                current_step="Colis finalisé",
                message="Colis finalisé",
                created_at=at - timedelta(seconds=8),
                started_at=at - timedelta(seconds=7),
                finished_at=at,
                updated_at=at,
                duration_s=7.0,
                seq=8,
                colis_id=colis_id,
                numero_suivi=numero,
                lot_id=lot["_id"],
            )
        )
    return {"clients": clients, "lots": lots, "colis": colis, "progress": progress}


def imports(n: int, invoices: int, agents: list[str], now: datetime) -> dict[str, list[Doc]]:
    jobs, progress, rows = [], [], []
    per_job = max(1, invoices // n)
    for i in range(n):
        at = now - timedelta(days=30 * (1 - i / n))
        job_id = f"seed-import-{i}"
        jobs.append({"_id": job_id, "kind": "edi", "state": "completed", "created_at": at})
        progress.append(
            _progress(
                id=job_id,
                kind="import.edi",
                owner=agents[i % len(agents)],
                title="Factures fournisseurs EDI",
                status=ProgressStatus.COMPLETED,
                total=5,
                processed=5,
                percent=100.0,
                message="Import terminé : 5 fichiers traités",
                created_at=at - timedelta(seconds=20),
                started_at=at - timedelta(seconds=19),
                finished_at=at,
                updated_at=at,
                duration_s=19.0,
                seq=12,
            )
        )
        for k in range(per_job):
            supplier = f"SUP{(i * per_job + k) % 40:03d}"
            number = f"F{i:04d}-{k:03d}"
            rows.append(
                {
                    "_id": f"{supplier}:{number}",
                    "supplier_id": supplier,
                    "supplier_name": f"Fournisseur {supplier}",
                    "number": number,
                    "job_id": job_id,
                    "source_file": f"seed-{i}.edi",
                    "date": at.date().isoformat(),
                    "total_ht": "120.00",
                    "total_ttc": "144.00",
                    "lines": [{"ref": "VERRE-01", "qty": 2, "amount": "60.00"}],
                }
            )
    return {"jobs": jobs, "progress": progress, "invoices": rows}


def productivity_days(parcels_doc: list[Doc], agents: list[str]) -> list[Doc]:
    days: dict[str, Doc] = {}
    for doc in parcels_doc:
        at: datetime = doc["finished_at"]
        entry = days.setdefault(day_id(at), {"_id": day_id(at), "agents": {}})["agents"]
        agent = entry.setdefault(
            agent_key(doc["owner"]), {"parcels": 0, "by_hour": {}, "steps": {}}
        )
        agent["parcels"] += 1
        hour = f"{at.astimezone(UTC).hour:02d}"
        agent["by_hour"][hour] = agent["by_hour"].get(hour, 0) + 1
        for step in STEP_ORDER:
            figures = agent["steps"].setdefault(step, {"count": 0, "total_s": 0.0})
            figures["count"] += 1
            figures["total_s"] += 1.0
    return list(days.values())


async def _insert(client: AsyncMongoClient[Doc], db: str, collection: str, docs: list[Doc]) -> None:
    target = client[db][collection]
    for start in range(0, len(docs), BATCH):
        await target.insert_many(docs[start : start + BATCH], ordered=False)
    typer.echo(f"{db}.{collection}: {len(docs)}")


async def seed(
    url: str, prefix: str, n_parcels: int, n_imports: int, n_invoices: int, agents: list[str]
) -> None:
    rng = random.Random(16)
    now = datetime.now(UTC)
    colis = parcels(n_parcels, agents, now, rng)
    jobs = imports(n_imports, n_invoices, agents, now)
    client: AsyncMongoClient[Doc] = AsyncMongoClient(url, tz_aware=True)
    try:
        # each client listed by name as colis-svc lists them (colis_svc/client_names.py)
        names = [{"_id": name_key(c["name"], c["_id"])} for c in colis["clients"]]
        await _insert(client, f"{prefix}_colis", "client_names", names)
        await _insert(client, f"{prefix}_colis", "clients", colis["clients"])
        await _insert(client, f"{prefix}_colis", "lots", colis["lots"])
        await _insert(client, f"{prefix}_colis", "colis", colis["colis"])
        progress = colis["progress"] + jobs["progress"]
        await _insert(client, f"{prefix}_progress", "progress", progress)
        # their list entries, as progress-svc writes them, and the mark that all are listed
        entries = sorted({key for doc in progress for key in list_keys(doc)} | {LISTED_MARKER})
        await _insert(
            client, f"{prefix}_progress", LISTS_COLLECTION, [{"_id": key} for key in entries]
        )
        await _insert(client, f"{prefix}_import", "jobs", jobs["jobs"])
        await _insert(client, f"{prefix}_import", "invoices", jobs["invoices"])
        await _insert(
            client,
            f"{prefix}_gateway",
            "productivity_days",
            productivity_days(colis["progress"], agents),
        )
    finally:
        await client.close()


@app.command()
def main(
    mongo_url: Annotated[
        str, typer.Option(envvar="JAUGE_MONGO_URL")
    ] = "mongodb://127.0.0.1:27017/",
    prefix: Annotated[str, typer.Option(envvar="JAUGE_DB_PREFIX")] = "jauge",
    parcels_count: Annotated[int, typer.Option("--parcels")] = 10_000,
    imports_count: Annotated[int, typer.Option("--imports")] = 1_000,
    invoices_count: Annotated[int, typer.Option("--invoices")] = 50_000,
    agents: Annotated[
        str, typer.Option(help="Owners of the history, comma-separated")
    ] = "alice,bob,carla",
) -> None:
    """Fill the store (the ids are `seed-*`: run it on an empty store)."""
    started = time.perf_counter()
    names = [a.strip() for a in agents.split(",") if a.strip()]
    asyncio.run(seed(mongo_url, prefix, parcels_count, imports_count, invoices_count, names))
    typer.echo(f"seeded in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    app()
