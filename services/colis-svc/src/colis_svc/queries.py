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
from colis_svc.domain import (
    LotStatut,
    LotType,
    can_change_lot_statut,
    parcel_refusal,
    ship_refusal,
)
from colis_svc.files import FileStore, image_names
from colis_svc.lot_index import InvalidCursor
from colis_svc.repository import ColisRepository, Doc
from colis_svc.runs import Emit, is_transient, utc_now
from colis_svc.settings import SERVICE
from jauge_shared.contracts import ColisRpcRequest, LotCreated, stable_event_id
from jauge_shared.contracts.colis_rpc import (
    CLIENT_NAME_MAX,
    CLIENT_PHONE_MAX,
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
    ShipLot,
    UpdateClient,
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
            case UpdateClient():
                return await self.update_client(query)
            case GetTariff():
                return (await self.repo.tariff()).to_document()
            case CreateLot():
                return await self.create_lot(query)
            case ListLots():
                return await self.list_lots(query)
            case GetLot():
                return public_lot(await self._lot(query.lot_id))
            case CloseLot():
                return await self.close_lot(query)
            case ShipLot():
                return await self.ship_lot(query)
            case GetColis():
                return public_colis(await self._colis(query.colis_id))
            case ColisImage():
                return await self.colis_image(query)
            case ListLotColis():
                await self._lot(query.lot_id)
                parcels = await self.repo.lot_index.lot_parcels(query.lot_id, query.limit)
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
        name, phone = _client_fields(query.name, query.phone)
        client = {"_id": "cli-" + uuid4().hex[:12], "name": name, "phone": phone}
        await self.repo.add_client({**client, "created_at": self.clock()})
        await self.audit.client_changed(client["_id"], None, client, query.user_id)
        return public_client(client)

    async def update_client(self, query: UpdateClient) -> Doc:
        """The parcels keep the name they were given (`client_name`): an invoice already
        written for one does not change under it."""
        before = await self.repo.get_client(query.client_id)
        if before is None:
            raise RpcError(404, "Client introuvable.")
        name, phone = _client_fields(
            before["name"] if query.name is None else query.name,
            before.get("phone", "") if query.phone is None else query.phone,
        )
        after = {**before, "name": name, "phone": phone}
        await self.repo.update_client(
            query.client_id, before["name"], {"name": name, "phone": phone}
        )
        await self.audit.client_changed(query.client_id, before, after, query.user_id)
        return public_client(after)

    async def list_lots(self, query: ListLots) -> Doc:
        try:
            page = await self.repo.lot_index.page(query.statut, query.limit, query.cursor)
        except InvalidCursor as e:
            raise RpcError(400, "Curseur invalide : reprenez la liste depuis le début.") from e
        return {**page, "items": [public_lot(d) for d in page["items"]]}

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
        return await self._move(lot, LotStatut.FERME, query.user_id)

    async def ship_lot(self, query: ShipLot) -> Doc:
        """Only a closed lot ships (domain: `ship_refusal`); shipping it again changes
        nothing."""
        lot = await self._lot(query.lot_id)
        refusal = ship_refusal(lot["statut"], lot["numero_lot"])
        if refusal is not None:
            raise RpcError(409, refusal)
        if lot["statut"] == LotStatut.EXPEDIE.value:
            return public_lot(lot)
        return await self._move(lot, LotStatut.EXPEDIE, query.user_id)

    async def _move(self, lot: Doc, statut: LotStatut, who: str) -> Doc:
        # the totals summed once more, now that no parcel can join or change
        await self.repo.lot_index.refresh_totals(lot["_id"])
        await self.repo.set_lot_statut(lot["_id"], statut, self.clock())
        await self.audit.lot_closed(lot, statut.value, who)
        return public_lot(await self._lot(lot["_id"]))

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
        refusal = parcel_refusal(lot["statut"], lot["numero_lot"])
        if refusal is not None:
            raise RpcError(409, refusal)
        client = await self.repo.get_client(query.client_id) if query.client_id else None
        return {"lot": public_lot(lot), "client_name": client["name"] if client else None}

    async def precheck_update(self, query: PrecheckUpdate) -> Doc:
        colis = await self._colis(query.colis_id)
        lot = await self._lot(colis["lot_id"])
        refusal = parcel_refusal(lot["statut"], lot["numero_lot"], update=True)
        if refusal is not None:
            raise RpcError(409, refusal)
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


def _client_fields(name: str, phone: str) -> tuple[str, str]:
    """The client's name and phone, trimmed; a 422 in French when they are not valid."""
    name, phone = name.strip(), phone.strip()
    if not name or len(name) > CLIENT_NAME_MAX:
        raise RpcError(
            422, f"Client invalide : le nom est obligatoire ({CLIENT_NAME_MAX} caractères au plus)."
        )
    if len(phone) > CLIENT_PHONE_MAX:
        raise RpcError(
            422, f"Client invalide : le téléphone a {CLIENT_PHONE_MAX} caractères au plus."
        )
    return name, phone
