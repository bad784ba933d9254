"""Request/reply contracts of colis-svc's reads and lot/client changes (`rpc.colis` on
`colis-svc.rpc`), one model per method, as `import_rpc.py` does for import-svc.

On the wire a request stays `{"method": ..., "params": {...}}` (`ColisRpcRequest`, the
envelope the AsyncAPI document shows); `ColisRpcRequest.query()` reads it as one of the
typed models below, discriminated by `method`, and colis-svc's `queries.py` answers each
model with its own method. A change (`CHANGES = True`) is never asked twice by the
gateway; a read may be, when the first is lost with a broker node.

The changes name who asks: `create_lot`, `close_lot`, `ship_lot`, `create_client` and
`update_client` take a `user_id` (the caller's username, for the audit trail; absent,
the entry says nobody).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

# an id of colis-svc's (lot, parcel, client) and the username of who asks: bounded once
Ref = Annotated[str, Field(max_length=64)]
Actor = Annotated[str, Field(max_length=64)]


class _Query(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    CHANGES: ClassVar[bool] = False

    def to_request(self) -> ColisRpcRequest:
        params = self.model_dump(mode="json", exclude={"method"}, exclude_defaults=True)
        return ColisRpcRequest(method=self.method, params=params)  # type: ignore[attr-defined]


class _Page(_Query):
    limit: int = 100
    before: int | None = None


class ListClients(_Query):
    method: Literal["list_clients"] = "list_clients"


# A client's name and phone as an agent types them. colis-svc trims them and refuses,
# in French, what breaks these bounds; the API's schema states the same bounds, so that
# its clients know them beforehand (a name needs a character that is not a space).
CLIENT_NAME_MAX = 200
CLIENT_PHONE_MAX = 40
ClientName = Annotated[str, Field(min_length=1, max_length=CLIENT_NAME_MAX, pattern=r"\S")]
ClientPhone = Annotated[str, Field(max_length=CLIENT_PHONE_MAX)]


class CreateClient(_Query):
    CHANGES: ClassVar[bool] = True
    method: Literal["create_client"] = "create_client"
    name: str = Field(max_length=1000)
    phone: str = Field(default="", max_length=1000)
    user_id: Actor = ""


class UpdateClient(_Query):
    """Only the fields given change."""

    CHANGES: ClassVar[bool] = True
    method: Literal["update_client"] = "update_client"
    client_id: Ref
    name: str | None = Field(default=None, max_length=1000)
    phone: str | None = Field(default=None, max_length=1000)
    user_id: Actor = ""


class GetTariff(_Query):
    method: Literal["get_tariff"] = "get_tariff"


class CreateLot(_Query):
    CHANGES: ClassVar[bool] = True
    method: Literal["create_lot"] = "create_lot"
    type_lot: str = Field(max_length=64)
    user_id: Actor = ""


class ListLots(_Query):
    """A page of lots, newest day first and by number within a day: `{items,
    next_cursor}`, the cursor (opaque) of the previous page asking for the next one."""

    method: Literal["list_lots"] = "list_lots"
    statut: str | None = Field(default=None, max_length=64)
    limit: int = 200
    cursor: str | None = Field(default=None, max_length=200)


class GetLot(_Query):
    method: Literal["get_lot"] = "get_lot"
    lot_id: Ref


class CloseLot(_Query):
    CHANGES: ClassVar[bool] = True
    method: Literal["close_lot"] = "close_lot"
    lot_id: Ref
    user_id: Actor = ""


class ShipLot(_Query):
    CHANGES: ClassVar[bool] = True
    method: Literal["ship_lot"] = "ship_lot"
    lot_id: Ref
    user_id: Actor = ""


class GetColis(_Query):
    method: Literal["get_colis"] = "get_colis"
    colis_id: Ref


class ColisImage(_Query):
    method: Literal["colis_image"] = "colis_image"
    colis_id: Ref
    thumbnail: bool = False


class ListLotColis(_Query):
    method: Literal["list_lot_colis"] = "list_lot_colis"
    lot_id: Ref
    limit: int = 1000


class Precheck(_Query):
    """What the gateway checks before queueing a creation: the lot exists and is open.
    The client's name is for the task's title."""

    method: Literal["precheck"] = "precheck"
    lot_id: Ref
    client_id: Ref | None = None


class PrecheckUpdate(_Query):
    method: Literal["precheck_update"] = "precheck_update"
    colis_id: Ref


class ColisHistory(_Page):
    method: Literal["colis_history"] = "colis_history"
    colis_id: Ref


class LotHistory(_Page):
    method: Literal["lot_history"] = "lot_history"
    lot_id: Ref


class AuditPage(_Page):
    method: Literal["audit"] = "audit"


class Search(_Query):
    """A parcel by tracking number or a lot by number, as someone typed it (colis-svc's
    `search.py` forgives case, spaces, dashes, look-alike letters and one swap)."""

    method: Literal["search"] = "search"
    q: str = Field(min_length=1, max_length=100)


ColisQuery = Annotated[
    ListClients
    | CreateClient
    | UpdateClient
    | GetTariff
    | CreateLot
    | ListLots
    | GetLot
    | CloseLot
    | ShipLot
    | GetColis
    | ColisImage
    | ListLotColis
    | Precheck
    | PrecheckUpdate
    | ColisHistory
    | LotHistory
    | AuditPage
    | Search,
    Field(discriminator="method"),
]
COLIS_QUERY: TypeAdapter[ColisQuery] = TypeAdapter(ColisQuery)
QUERY_MODELS: tuple[type[_Query], ...] = tuple(
    model for model in _Query.__subclasses__() + _Page.__subclasses__() if model is not _Page
)

COLIS_RPC_METHODS = frozenset(model.model_fields["method"].default for model in QUERY_MODELS)
# the request/reply methods that change colis-svc's state; every other one is a read,
# which the gateway may ask twice when the first is lost (a broker node dying)
COLIS_RPC_CHANGES = frozenset(
    model.model_fields["method"].default for model in QUERY_MODELS if model.CHANGES
)


class ColisRpcRequest(BaseModel):
    """Request/reply from the gateway to colis-svc (`rpc.colis` on `colis-svc.rpc`):
    reads of clients, tariff, lots and parcels, and the synchronous lot/client changes.

    `method` names one of the typed requests of `jauge_shared.contracts.colis_rpc`,
    `params` holds its fields. The audit trail is read with `colis_history` (`colis_id`),
    `lot_history` (`lot_id`) and `audit`, each with `limit` and `before` (docs/colis.md,
    "Audit trail").

    The reply is `{"ok": true, "result": ...}` or `{"ok": false, "status", "detail"}`
    (an HTTP status and a French message the gateway passes on as they are)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[a-z_]+$",
        examples=["list_lots", "create_lot", "close_lot", "get_colis", "precheck", "colis_history"],
    )
    params: dict[str, Any] = Field(
        default_factory=dict, examples=[{"lot_id": "3f0c9a", "user_id": "alice"}]
    )

    @property
    def is_read(self) -> bool:
        return self.method not in COLIS_RPC_CHANGES

    def query(self) -> ColisQuery:
        """The typed request; a `ValidationError` for an unknown method or bad params."""
        return COLIS_QUERY.validate_python({**self.params, "method": self.method})


class ColisRpcReply(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ok: bool
    result: Any = None
    status: int = 200
    detail: str | None = None
