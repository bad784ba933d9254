"""search.py: the header's search box, a parcel or a lot as someone typed its number."""

from __future__ import annotations

from typing import TYPE_CHECKING

from colis_svc.search import lot_number, swapped, tracking_number

if TYPE_CHECKING:  # the world of conftest.py
    from conftest import World


def test_typing_is_forgiven_case_spaces_dashes_look_alikes_and_a_missing_prefix() -> None:
    real = "TS20261122-7KQ2M9X1"
    for typed in ("ts20261122 7kq2m9xl", "TS 2026 1122 7KQ2 M9XI", "20261122-7kq2m9x1"):
        assert tracking_number(typed) == real
    assert tracking_number("TS20261122-7KQ2M9X") is None  # a symbol short
    assert tracking_number("TS2026112A-7KQ2M9X1") is None  # a letter in the day
    assert lot_number("cargo 20261122001") == "CARGO-20261122001"
    assert lot_number("Express-2026II22OO4") == "EXPRESS-20261122004"
    assert lot_number("CARGO-20261122000") is None  # counters start at 1
    assert lot_number("TS20261122-7KQ2M9X1") is None


def test_one_swap_of_neighbours_gives_each_valid_neighbour_once() -> None:
    near = swapped("TS20261122-7KQ2M9X1")
    assert "TS20261122-K7Q2M9X1" in near and "TS20261122-7KQ2M91X" in near
    assert "TS20261212-7KQ2M9X1" in near  # a swap in the day too
    assert "TS20261122-7KQ2M9X1" not in near and len(near) == len(set(near))
    assert len(near) <= 15  # so many lookups by _id at most, never a scan


async def test_a_misspelt_number_finds_the_parcel_and_a_lot_number_its_lot(world: World) -> None:
    lot_id = await world.lot()
    await world.service.pipeline.run_task(world.create("s1", lot_id))
    parcel = await world.repo.get_colis("s1")
    assert parcel is not None
    numero: str = parcel["numero_suivi"]
    typed = numero.lower().replace("-", " ").replace("0", "o")
    [found] = await world.ask("search", q=typed)
    assert found["type"] == "colis" and found["id"] == "s1" and found["exact"] is True
    assert found["url"] == "/colis/s1" and found["numero"] == numero

    body = numero[11:]
    if body[0] != body[1]:  # two neighbours swapped: offered, not exact
        slip = numero[:11] + body[1] + body[0] + body[2:]
        near = await world.ask("search", q=slip)
        assert [(f["id"], f["exact"]) for f in near] == [("s1", False)]

    lot = await world.repo.get_lot(lot_id)
    assert lot is not None
    [found] = await world.ask("search", q=lot["numero_lot"].lower())
    assert found == {
        "type": "lot",
        "id": lot_id,
        "numero": lot["numero_lot"],
        "type_lot": "cargo",
        "statut": "ouvert",
        "url": f"/lots/{lot_id}",
        "exact": True,
    }
    assert await world.ask("search", q="CARGO-19990101001") == []
    assert await world.ask("search", q="bonjour") == []
    reply = await world.rpc("search", {"q": "x" * 101})
    assert reply["ok"] is False and reply["status"] == 400
