"""A fee's usage components as the API takes them and as rating prices them: the stored JSON
(decimal strings, as sent) turned into `pricing.PriceModel`, checked, and matched to the parent
fee's components (docs/metering.md)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import sqlalchemy as sa

from .. import money
from ..db import db, new_id
from ..errors import Conflict, InvalidInput, NotFound
from . import pricing
from .models import Meter, PlanFee, UsageComponent


def price_model(stored: Mapping[str, Any], currency: str) -> pricing.PriceModel:
    """The component's stored pricing as the pure pricing functions take it."""
    def unit(text: str | None) -> Fraction:
        return money.parse_unit_amount(text or "0", currency)

    return pricing.PriceModel(
        model=stored["model"], unit_amount=unit(stored.get("unit_amount")),
        package_size=stored.get("package_size") or 1,
        tiers=tuple(pricing.Tier(None if t.get("up_to") is None else Fraction(t["up_to"]), unit(t.get("unit_amount")),
                                 unit(t.get("flat_amount"))) for t in stored.get("tiers") or ()),
        included_units=Fraction(stored.get("included_units") or "0"),
        minimum=stored.get("minimum"), maximum=stored.get("maximum"))


def _stored(given: Mapping[str, Any], currency: str, where: str) -> dict[str, Any]:
    """The component's pricing as stored: its decimal strings checked, its bounds in minor units."""
    out: dict[str, Any] = {"model": given["model"], "unit_amount": given.get("unit_amount"),
                           "package_size": given.get("package_size"),
                           "tiers": [dict(t) for t in given.get("tiers") or ()],
                           "included_units": given.get("included_units") or "0"}
    if given.get("unit"):
        out["unit"] = given["unit"]
    for name in ("minimum", "maximum"):
        value = given.get(name)
        try:
            out[name] = None if value is None else money.parse_amount(value, currency)
        except money.MoneyError as exc:
            raise InvalidInput.on(f"{where}.{name}", str(exc)) from None
    prices = [("unit_amount", out["unit_amount"])] + [
        (f"tiers.{i}.{name}", t.get(name))
        for i, t in enumerate(out["tiers"]) for name in ("unit_amount", "flat_amount")]
    for name, value in prices:
        try:
            money.parse_unit_amount(value or "0", currency)
        except money.MoneyError as exc:
            raise InvalidInput.on(f"{where}.{name}", str(exc)) from None
    model = price_model(out, currency)
    for name, message in pricing.check(model):
        raise InvalidInput.on(f"{where}.{name.replace('[', '.').replace(']', '')}", message)
    if given["model"] in ("per_unit", "package") and given.get("unit_amount") is None:
        raise InvalidInput.on(f"{where}.unit_amount", f"A {given['model']} price names its unit_amount.")
    if given["model"] == "package" and not given.get("package_size"):
        raise InvalidInput.on(f"{where}.package_size", "A package price names its package_size.")
    return out


def add_components(fee: PlanFee, given: Sequence[Mapping[str, Any]], tenant_id: str, livemode: bool,
                   currency: str, parent_fee: PlanFee | None, where: str) -> None:
    """Attach the usage components `given` (as the schema loaded them) to `fee` (not flushed)."""
    seen: set[tuple[str, tuple]] = set()
    for j, component in enumerate(given):
        at = f"{where}.usage.{j}"
        meter = db.session.scalars(sa.select(Meter).where(Meter.tenant_id == tenant_id, Meter.livemode == livemode,
                                                          Meter.code == component["meter"])).first()
        if meter is None:
            raise NotFound.on(f"{at}.meter", f"No meter {component['meter']!r}.", "unknown_meter")
        dimension = dict(component.get("dimension") or {})
        unknown = sorted(set(dimension) - set(meter.dimensions or ()))
        if unknown:
            raise InvalidInput.on(f"{at}.dimension", f"The meter {meter.code!r} has the dimensions "
                                                     f"{list(meter.dimensions or [])}; not {unknown}.")
        key = (meter.id, tuple(sorted(dimension.items())))
        if key in seen:
            raise InvalidInput.on(f"{at}.meter", "A fee prices each meter (and dimension value) once.")
        seen.add(key)
        parent_component = None
        if parent_fee is not None:
            parent_component = next((c for c in parent_fee.components if c.meter_id == meter.id
                                     and dict(c.dimension or {}) == dimension), None)
            if parent_component is None:
                raise Conflict.on(f"{at}.meter", f"The parent fee {parent_fee.name!r} does not price the meter "
                                                 f"{meter.code!r}{' for ' + str(dimension) if dimension else ''}: "
                                                 "there is no platform share to build on.", "no_parent_price")
        fee.components.append(UsageComponent(
            id=new_id("uc"), position=j, meter_id=meter.id, meter=meter, name=component.get("name") or meter.name,
            dimension=dimension, pricing=_stored(component, currency, at),
            thresholds=sorted(component.get("thresholds") or []),
            parent_component_id=parent_component.id if parent_component else None))


def component_document(component: UsageComponent, currency: str) -> dict[str, Any]:
    p = component.pricing

    def amount(minor: int | None) -> str | None:
        return None if minor is None else money.format_amount(minor, currency)

    return {"id": component.id, "meter": component.meter.code, "name": component.name,
            "dimension": dict(component.dimension or {}), "unit": p.get("unit") or component.meter.unit,
            "model": p["model"], "unit_amount": p.get("unit_amount"),
            "package_size": p.get("package_size"), "tiers": p.get("tiers") or [],
            "included_units": p.get("included_units") or "0", "minimum": amount(p.get("minimum")),
            "maximum": amount(p.get("maximum")), "thresholds": list(component.thresholds or [])}
