"""Reading what VenueIO emitted in tests: its sink's batches of schema records."""

from __future__ import annotations

from basis_core import schema as S


def records(out: list, kind: S.Kind):
    """Every record of `kind` in the batches a VenueIO sink collected in `out`."""
    return [r for batch in out for r in batch if int(r["kind"]) == kind]


def fills_of(out: list) -> list[tuple[float, float, int]]:
    """(last qty, last price, fill number) of every fill event, in order."""
    evs = [r.view(S.ORDER_EVENT) for r in records(out, S.Kind.ORDER_EVENT)]
    return [
        (float(e["last_qty"]), float(e["last_px"]), int(e["fill_no"]))
        for e in evs
        if int(e["sub"]) == S.OrderEventType.PARTIAL_FILL and int(e["fill_no"]) >= 1
    ]


def order_events(out: list) -> list[int]:
    """The event type of every order event that is not a fill, in order."""
    return [
        int(r.view(S.ORDER_EVENT)["sub"])
        for r in records(out, S.Kind.ORDER_EVENT)
        if int(r.view(S.ORDER_EVENT)["fill_no"]) == 0
    ]
