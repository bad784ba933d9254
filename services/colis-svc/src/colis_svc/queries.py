"""Reads and lot/client changes the gateway asks for over RabbitMQ (request/reply).

Each typed request of `jauge_shared.contracts.colis_rpc` has its method here; `answer`
matches the request's model, never a method name. Replies are `{ok, result}` or
`{ok: false, status, detail}` with an HTTP status and a French message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import uuid4

from pydantic import ValidationError
from pydantic_core import to_jsonable_python

from colis_svc import audit, search
from colis_svc.documents import public_client, public_colis, public_lot
from colis_svc.domain import LotStatut, LotType, can_change_lot_statut
from colis_svc.files import FileStore, image_names
from colis_svc.repository import ColisRepository, Doc
from colis_svc.runs import Emit, is_transient, utc_now
from colis_svc.settings import SERVICE
from jauge_shared.contracts import ColisRpcRequest, LotCreated, stable_event_id
from jauge_shared.contracts.colis_rpc import (
    COLIS_RPC_METHODS,
    AuditPage,
    CloseLot,
    ColisHistory,
    ColisImage,
    ColisQuery,
    CreateClient,
    CreateLot,
    GetColis,
    GetLot,
    GetTariff,
    ListClients,
    ListLotColis,
    ListLots,
    LotHistory,
    Precheck,
    PrecheckUpdate,
    Search,
)

logger = logging.getLogger("colis_svc")
UNAVAILABLE = "Service des colis momentanément indisponible : réessayez."


class RpcError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class ColisQueries:
    def __init__(
        self,
        repository: ColisRepository,
        files: FileStore,
        emit: Emit,
        audit_log: audit.AuditLog,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.repo = repository
        self.files = files
        self.emit = emit
        self.audit = audit_log
        self.clock = clock

    async def rpc(self, request: ColisRpcRequest) -> dict[str, Any]:
        """The reply to one request off the wire: its typed form answered, or a 400."""
        if request.method not in COLIS_RPC_METHODS:
            return {"ok": False, "status": 400, "detail": f"Méthode inconnue : {request.method}."}
        try:
            query = request.query()
        except ValidationError as e:
            fields = ", ".join(sorted({str(error["loc"][-1]) for error in e.errors()}))
            detail = f"Paramètres invalides : {fields}."
            return {"ok": False, "status": 400, "detail": detail}
        return await self.reply(query)

    async def reply(self, query: ColisQuery) -> dict[str, Any]:
        try:
            result = await self.answer(query)
        except RpcError as e:
            return {"ok": False, "status": e.status, "detail": e.detail}
        except Exception as e:
            # the caller waits for an answer: a store hiccup is a 503, never silence
            if not is_transient(e):
                logger.exception("rpc failed", extra={"method": query.method})
            return {"ok": False, "status": 503, "detail": UNAVAILABLE}
        return {"ok": True, "result": to_jsonable_python(result)}

    async def answer(self, query: ColisQuery) -> Any:
        match query:
            case ListClients():
                return [public_client(d) for d in await self.repo.list_clients()]
            case CreateClient():
                return await self.create_client(query)
            case GetTariff():
                return (await self.repo.tariff()).to_document()
            case CreateLot():
                return await self.create_lot(query)
            case ListLots():
                lots = await self.repo.list_lots(query.statut, min(query.limit, 1000))
                return [public_lot(d) for d in lots]
            case GetLot():
                return public_lot(await self._lot(query.lot_id))
            case CloseLot():
                return await self.close_lot(query)
            case GetColis():
                return public_colis(await self._colis(query.colis_id))
            case ColisImage():
                return await self.colis_image(query)
            case ListLotColis():
                await self._lot(query.lot_id)
                parcels = await self.repo.list_colis(query.lot_id, min(query.limit, 5000))
                return [public_colis(d) for d in parcels]
            case Precheck():
                return await self.precheck(query)
            case PrecheckUpdate():
                return await self.precheck_update(query)
            case ColisHistory():
                return await self.colis_history(query)
            case LotHistory():
                await self._lot(query.lot_id)
                return await self.audit.page(
                    audit.lot_chain(query.lot_id), query.limit, query.before
                )
            case AuditPage():
                # every change to lots and parcels (the gateway lets admins only)
                return await self.audit.page(audit.ALL, query.limit, query.before)
            case Search():
                return await search.search(self.repo, query.q)

    async def create_client(self, query: CreateClient) -> Doc:
        name, phone = query.name.strip(), query.phone.strip()
        if not name or len(name) > 200 or len(phone) > 40:
            raise RpcError(422, "Client invalide : nom obligatoire (200 caractères au plus).")
        client = {"_id": "cli-" + uuid4().hex[:12], "name": name, "phone": phone}
        await self.repo.add_client({**client, "created_at": self.clock()})
        return public_client(client)

    async def create_lot(self, query: CreateLot) -> Doc:
        try:
            kind = LotType(query.type_lot)
        except ValueError as e:
            raise RpcError(422, "Type de lot invalide : cargo, express ou bateau.") from e
        now = self.clock()
        lot = await self.repo.create_lot(uuid4().hex, kind, now.date(), now)
        await self.audit.lot_created(lot, query.user_id)
        public = public_lot(lot)
        await self.emit(
            LotCreated(
                producer=SERVICE,
                job_id=lot["_id"],
                event_id=stable_event_id("lot.created", lot["_id"]),
                lot=to_jsonable_python(public),
            )
        )
        return public

    async def close_lot(self, query: CloseLot) -> Doc:
        lot = await self._lot(query.lot_id)
        if lot["statut"] == LotStatut.FERME.value:
            return public_lot(lot)
        if not can_change_lot_statut(lot["statut"], LotStatut.FERME):
            raise RpcError(409, f"Le lot {lot['numero_lot']} ne peut pas être fermé.")
        await self.repo.set_lot_statut(query.lot_id, LotStatut.FERME, self.clock())
        await self.audit.lot_closed(lot, LotStatut.FERME.value, query.user_id)
        return public_lot(await self._lot(query.lot_id))

    async def colis_image(self, query: ColisImage) -> Doc:
        doc = await self.repo.get_colis(query.colis_id)
        if doc is None or not doc.get("image"):
            raise RpcError(404, "Photo introuvable.")
        jpeg, thumb = image_names(doc["image"])
        # the gateway reads it from colis-svc's `photos` bucket by this name
        return {"file": thumb if query.thumbnail else jpeg}

    async def precheck(self, query: Precheck) -> Doc:
        """The lot exists and is open; the client's name is for the task's title."""
        lot = await self._lot(query.lot_id)
        if lot["statut"] != LotStatut.OUVERT.value:
            raise RpcError(
                409,
                f"Le lot {lot['numero_lot']} n'est pas ouvert : impossible d'y ajouter un colis.",
            )
        client = await self.repo.get_client(query.client_id) if query.client_id else None
        return {"lot": public_lot(lot), "client_name": client["name"] if client else None}

    async def precheck_update(self, query: PrecheckUpdate) -> Doc:
        colis = await self._colis(query.colis_id)
        lot = await self._lot(colis["lot_id"])
        if lot["statut"] != LotStatut.OUVERT.value:
            raise RpcError(
                409, f"Le lot {lot['numero_lot']} n'est pas ouvert : le colis ne peut plus changer."
            )
        return {"colis": public_colis(colis), "lot": public_lot(lot)}

    async def colis_history(self, query: ColisHistory) -> Doc:
        """Who changed the parcel and when, newest first (docs/colis.md, "Audit trail");
        a cancelled creation's parcel is gone, its history stays."""
        page = await self.audit.page(audit.colis_chain(query.colis_id), query.limit, query.before)
        if not page["entries"] and query.before is None:
            await self._colis(query.colis_id)  # 404 when there never was such a parcel
        return page

    async def _lot(self, lot_id: str) -> Doc:
        lot = await self.repo.get_lot(lot_id)
        if lot is None:
            raise RpcError(404, "Lot introuvable.")
        return lot

    async def _colis(self, colis_id: str) -> Doc:
        colis = await self.repo.get_colis(colis_id)
        if colis is None:
            raise RpcError(404, "Colis introuvable.")
        return colis
