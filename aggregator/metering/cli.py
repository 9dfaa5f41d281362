"""`aggregator usage …`: usage events sent and usage read from the command line, as the API's
/v1/usage_events, /v1/usage_events/batch, /v1/subscriptions/{id}/usage and /v1/usage_export do
them (same use cases, same schemas, same shapes with --json). Events are a provider's:
`--provider` acts as it."""
from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import click

from ..commands import (
    AreaGroup,
    Day,
    Instant,
    acting_for,
    json_option,
    now_for,
    pairs,
    print_json,
    print_rows,
    provider_option,
    say,
    tenant_scoped,
)
from ..plurals import counted
from . import export_service, usage_service
from .batch import judge_batch
from .schemas import SubscriptionUsageSchema

usage = AreaGroup("usage", help="Usage events sent, a subscription's current usage, a period's usage export "
                                "(CSV, Parquet).")


# --- usage send, usage show ---------------------------------------------------------------------

#: The columns of an events CSV file; any other column is a property of the event.
_CSV_FIELDS = ("id", "subscription", "meter", "value", "timestamp")
_BATCH = 1000  # events per call of the use case, as POST /v1/usage_events/batch takes them


def _events_of(path: Path) -> list[Any]:
    """The events of a JSON file (a list of events, or {"events": [...]}, as the API takes them)
    or a CSV file (a header row: id, subscription, meter, value, timestamp; other columns are
    properties, an empty cell left out)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"cannot read {str(path)!r}: {exc}.", param_hint="--file") from None
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        return [{**{key: row[key] for key in _CSV_FIELDS if row.get(key) not in (None, "")},
                 "properties": {key: value for key, value in row.items()
                                if key not in _CSV_FIELDS and key is not None and value not in (None, "")}}
                for row in rows]
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"{str(path)!r} is neither a .csv file nor JSON: {exc}.", param_hint="--file") \
            from None
    events = data.get("events") if isinstance(data, dict) else data
    if not isinstance(events, list):
        raise click.BadParameter(f"{str(path)!r}: a JSON list of events, or {{\"events\": [...]}}.",
                                 param_hint="--file")
    return events


def _send(principal, bodies: list[Any]) -> list[dict[str, Any]]:
    """Each body through the batch use case (up to 1,000 a call): its outcome as the batch API
    answers it ({status, event | error})."""
    results: list[dict[str, Any]] = []
    for start in range(0, len(bodies), _BATCH):
        results.extend(judge_batch(principal, bodies[start:start + _BATCH], now_for(principal)))
    return results


@usage.command("send")
@tenant_scoped
@provider_option(True, "The provider whose subscription used it (the operator acts as it).")
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Events to send, each accepted or refused on its own: a .csv file (columns id, subscription, "
                   "meter, value, timestamp; any other column is a property) or a JSON list of events.")
@click.option("--id", "event_id", default=None, help="One event: your idempotency key for it.")
@click.option("--subscription", default=None, help="The subscription's id or your external billing id for it.")
@click.option("--meter", default=None, help="The meter's code.")
@click.option("--value", default=None, help="A decimal number (12.5); count meters may leave it out.")
@click.option("--timestamp", type=Instant(), default=None, help="When it happened (default: now on the clock).")
@click.option("--property", "properties", multiple=True, callback=pairs, metavar="KEY=VALUE",
              help="Repeat: the event's properties (dimensions such as resource=cpu, a meter's field).")
@json_option
def send(principal, provider_id, path, event_id, subscription, meter, value, timestamp, properties, as_json):
    """Send usage events: one (--id, --subscription, --meter, --value) or a file of them (--file),
    by the rules of POST /v1/usage_events/batch. Prints each event's outcome; exit status 1 if any
    was refused (a replay of a stored event is accepted)."""
    one = [event_id, subscription, meter, value, timestamp, properties]
    if path is not None and any(item is not None for item in one):
        raise click.UsageError("Give either --file or one event's options, not both.")
    if path is None:
        if not (event_id and subscription and meter):
            raise click.UsageError("One event needs --id, --subscription and --meter (or give --file).")
        bodies: list[Any] = [{"id": event_id, "subscription": subscription, "meter": meter,
                              **({"value": value} if value is not None else {}),
                              **({"timestamp": timestamp.isoformat()} if timestamp else {}),
                              "properties": properties or {}}]
    else:
        bodies = _events_of(path)
        if not bodies:
            raise click.UsageError(f"{str(path)!r} holds no events.")
    results = _send(acting_for(principal, provider_id), bodies)
    if as_json:
        print_json({"data": results})
    else:
        rows = [{"id": (body.get("id") if isinstance(body, dict) else None), "status": result["status"],
                 "outcome": ("replayed" if result.get("replayed") else "stored") if "event" in result
                 else result["error"]["code"] or result["error"]["type"],
                 "period": result["event"]["period"] if "event" in result else None,
                 "value": result["event"]["value"] if "event" in result else None,
                 "error": result["error"]["message"] if "error" in result else None}
                for body, result in zip(bodies, results)]
        print_rows(rows, ["id", "status", "outcome", "period", "value", "error"], "Usage events")
    refused = sum("error" in result for result in results)
    if refused:
        raise click.ClickException(f"{refused} of {counted(len(results), 'event', 'events')} refused.")
    if not as_json:
        say(f"{counted(len(results), 'event', 'events')} accepted.")


@usage.command("show")
@tenant_scoped
@provider_option(False, "As this provider reads it (then SUBSCRIPTION may be its external billing id).")
@click.argument("ref", metavar="SUBSCRIPTION")
@json_option
def show(principal, provider_id, ref, as_json):
    """A subscription's usage in the open period so far, per usage component of its plan: the
    quantity, the included units, % used and what it costs so far (GET /v1/subscriptions/{id}/usage)."""
    principal = acting_for(principal, provider_id) if provider_id else principal
    data = SubscriptionUsageSchema().dump(usage_service.current_usage(principal, ref, now_for(principal)))
    if as_json:
        print_json(data)
        return
    rows = [{**line, "quantity": f"{line['quantity']} {line['unit']}", "included": line["included_units"],
             "used": None if line["percent_used"] is None else f"{line['percent_used']} %",
             "dimension": ", ".join(f"{k}={v}" for k, v in line["dimension"].items()) or None,
             "thresholds": ", ".join(f"{t} %" for t in line["thresholds"]) or None}
            for line in data["data"]]
    print_rows(rows, ["name", "meter", "dimension", "aggregation", "quantity", "included", "used", "amount",
                      "thresholds"], f"Usage of {data['subscription']} in the period {data['period']} as of "
                                     f"{data['as_of']} ({data['currency']})")
    if not rows:
        say("Its plan prices no usage.")


# --- usage export ------------------------------------------------------------------------------

@usage.command("export")
@tenant_scoped
@click.option("--period", type=Day(), required=True, help="The invoicing period's start date.")
@click.option("--format", "form", type=click.Choice(export_service.FORMATS), default="csv", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True, path_type=Path), default=None,
              help="The file to write, atomically (default: standard output for csv; usage-PERIOD.parquet).")
@provider_option(False, "Only this provider's subscriptions (as its API key sees them).")
def export(principal, period, form, output, provider_id):
    """One row per (subscription, meter, dimension values, UTC hour) of a period, as
    GET /v1/usage_export writes it (a period still open: as of now)."""
    if provider_id:
        principal = acting_for(principal, provider_id)
    found = export_service.usage_export(principal, period.date(), now_for(principal))
    if output is None and form == "parquet":
        output = Path(f"{found.name}.parquet")
    if output is None or str(output) == "-":
        export_service.write(found, form, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    tmp = output.with_name(f".{output.name}.tmp")
    try:
        with open(tmp, "wb") as handle:
            rows = export_service.write(found, form, handle)
        tmp.replace(output)
    finally:
        tmp.unlink(missing_ok=True)
    say(f"Wrote {output}: {rows:,} rows of {found.period.start.isoformat()} as of {found.as_of.isoformat()} "
        f"(period {found.status}).")
