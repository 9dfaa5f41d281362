"""Meters: what a tenant measures and how its usage events aggregate (docs/metering.md). The
tenant's (admin key) to create and change; its providers read them. Each use case owns its
transaction."""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..accounts.keys import Principal
from ..db import db, new_id
from ..errors import Conflict, InvalidInput, NotFound
from ..pagination import Page, paginate
from .models import Meter

AGGREGATIONS = ("count", "sum", "max", "latest", "unique_count", "time_weighted", "hourly_max")
TIMED = ("time_weighted", "hourly_max")
#: What events already aggregated under cannot change: their stored values and rollups hold it.
FIXED_ONCE_USED = ("aggregation", "field", "decimals", "dimensions", "reset")


class MeterCodeTaken(Conflict):
    code = "meter_code_taken"


class MeterInUse(Conflict):
    code = "meter_in_use"


def list_meters(principal: Principal, limit: int, starting_after: str | None = None) -> Page:
    query = sa.select(Meter).where(Meter.tenant_id == principal.tenant_id, Meter.livemode == principal.livemode)
    return paginate(query, Meter.id, limit, starting_after)


def get_meter(principal: Principal, code: str) -> Meter:
    """The tenant's meter in the key's mode, by code or id."""
    found = db.session.scalars(sa.select(Meter).where(
        Meter.tenant_id == principal.tenant_id, Meter.livemode == principal.livemode,
        sa.or_(Meter.code == code, Meter.id == code))).first()
    if found is None:
        raise NotFound(f"No meter {code!r} in {principal.mode} mode.")
    return found


def _check(fields: Mapping[str, Any]) -> None:
    aggregation = fields["aggregation"]
    if aggregation == "unique_count" and not fields.get("field"):
        raise InvalidInput.on("field", "A unique_count meter counts the distinct values of a property: name it.")
    if fields.get("reset") == "never" and aggregation in TIMED:
        raise InvalidInput.on("reset", f"A {aggregation} meter measures each period over time: its reset is "
                                       "'period'.")


def create_meter(principal: Principal, fields: Mapping[str, Any], now: datetime) -> Meter:
    _check(fields)
    meter = Meter(id=new_id("mtr"), tenant_id=principal.tenant_id, livemode=principal.livemode,
                  code=fields["code"], name=fields["name"], unit=fields.get("unit") or "unit",
                  field=fields.get("field"), aggregation=fields["aggregation"], reset=fields.get("reset", "period"),
                  decimals=fields.get("decimals", 0), dimensions=list(fields.get("dimensions") or []),
                  created_at=now, updated_at=now)
    db.session.add(meter)
    try:
        db.session.commit()
    except sa.exc.IntegrityError:
        db.session.rollback()
        raise MeterCodeTaken.on("code", f"A meter with code {fields['code']!r} already exists.") from None
    return meter


def update_meter(principal: Principal, code: str, changes: Mapping[str, Any], now: datetime) -> Meter:
    """Change a meter. Its name and unit always; how it aggregates only while it has no events."""
    meter = db.session.scalars(sa.select(Meter).where(Meter.id == get_meter(principal, code).id)
                               .with_for_update()).one()
    fixed = [name for name in FIXED_ONCE_USED if name in changes and changes[name] != getattr(meter, name)]
    if fixed and meter.first_event_at is not None:
        raise MeterInUse.on(fixed[0], f"The meter {meter.code!r} has usage events: its {fixed[0]} cannot change "
                                      "(create another meter).")
    merged = {name: changes.get(name, getattr(meter, name)) for name in FIXED_ONCE_USED}
    try:
        _check(merged)
    except InvalidInput as exc:  # valid alone, not with what the meter already is
        raise Conflict(str(exc), code="meter_settings_conflict", fields=exc.fields) from None
    for name, value in changes.items():
        setattr(meter, name, list(value) if name == "dimensions" else value)
    meter.updated_at = now
    db.session.commit()
    return meter


def meter_document(meter: Meter) -> dict[str, Any]:
    return {"id": meter.id, "object": "meter", "code": meter.code, "name": meter.name, "unit": meter.unit,
            "field": meter.field, "aggregation": meter.aggregation, "reset": meter.reset,
            "decimals": meter.decimals, "dimensions": list(meter.dimensions or []),
            "in_use": meter.first_event_at is not None, "livemode": meter.livemode,
            "created_at": meter.created_at, "updated_at": meter.updated_at}
