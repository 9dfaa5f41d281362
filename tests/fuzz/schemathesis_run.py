"""schemathesis over the whole API, in-process (WSGI), with real keys: the engine the CLI runs
(examples, coverage, fuzzing and stateful phases), and its figures.

Each engine run calls every operation with one key, in one mode: the keys of a caller are those its
operations take (an admin key where admin is allowed, else a provider key), so an operation is also
called with keys it refuses (answers as documented); `callers()` lists the callers a full run uses."""
from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field

import schemathesis
from schemathesis.engine import events

from aggregator.accounts import tax_ids

#: The checks every run makes; each must find nothing. Not use_after_free: DELETE revokes a key or
#: cancels a bill, which stays readable with its status (as in Stripe), not gone.
CHECKS = ["not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "negative_data_rejection", "positive_data_acceptance",
          "ensure_resource_availability", "unsupported_method"]


def _period_backwards(body) -> bool:
    period = body.get("service_period") if isinstance(body, dict) else None
    return (isinstance(period, dict) and isinstance(period.get("start"), str) and isinstance(period.get("end"), str)
            and period["end"] < period["start"])


def _has_logo(body) -> bool:
    return isinstance(body, dict) and isinstance(body.get("logo"), str)


def _plan_fees_break_the_rules(body) -> bool:
    """A plan's fees each have their own name, and name a parent fee only on a parent plan."""
    fees = body.get("fees") if isinstance(body, dict) else None
    if not isinstance(fees, list) or not all(isinstance(fee, dict) for fee in fees):
        return False
    names = [fee.get("name") for fee in fees]
    resold = any(fee.get("parent_fee") is not None for fee in fees)
    return len(names) != len(set(map(str, names))) or (resold and not body.get("parent_plan"))


def _tax_identity_of_another_form(body) -> bool:
    """A tax id whose value is not of its type's form (check digits, length: tax_ids.normalize), or
    an IBAN or BIC that is not one (their check digits): JSON Schema cannot state these."""
    if not isinstance(body, dict):
        return False
    for item in body.get("tax_ids") or []:
        if isinstance(item, dict) and isinstance(item.get("type"), str) and isinstance(item.get("value"), str):
            try:
                tax_ids.normalize(item["type"], item["value"])
            except ValueError:
                return True
    instructions = body.get("payment_instructions")
    for name, check in (("iban", tax_ids.normalize_iban), ("bic", tax_ids.normalize_bic)):
        value = instructions.get(name) if isinstance(instructions, dict) else None
        if isinstance(value, str):
            try:
                check(value)
            except ValueError:
                return True
    return False


def _retry_days_out_of_order(body) -> bool:
    """A tenant's retry_days in increasing order, each once (the document says it in words)."""
    days = body.get("retry_days") if isinstance(body, dict) else None
    return (isinstance(days, list) and all(isinstance(d, (int, float)) for d in days)
            and any(b <= a for a, b in zip(days, days[1:])))


#: The mode of the run under way (runs are one after the other).
_MODE = {"live": False}


def _stripe_key_of_the_other_mode(case) -> bool:
    key = case.body.get("stripe_secret_key") if isinstance(case.body, dict) else None
    return isinstance(key, str) and ("_live_" in key) != _MODE["live"]


@schemathesis.hook
def filter_case(context, case):
    """The rules JSON Schema cannot state (the document says them in words): a bill's service
    period does not end before it starts; a tenant's logo decodes to an image (the pattern states
    the data: URI; tests/e2e/test_tenant_logo.py checks images); a Stripe key is of the caller's
    mode and stripe_api_base is for test mode only (one document serves both); a plan's fees have
    names of their own and name parent fees only on a plan built on a parent plan; a tax id, IBAN or
    BIC has its kind's check digits and length; retry days increase. Valid bodies that break them are not generated."""
    meta = case.meta
    positive = meta is not None and meta.generation.mode.is_positive
    live_api_base = _MODE["live"] and isinstance(case.body, dict) and case.body.get("stripe_api_base")
    return not (positive and (_period_backwards(case.body) or _has_logo(case.body)
                              or _stripe_key_of_the_other_mode(case) or live_api_base
                              or _plan_fees_break_the_rules(case.body)
                              or _tax_identity_of_another_form(case.body)
                              or _retry_days_out_of_order(case.body)))


@dataclass
class Figures:
    requests: int = 0
    operations: set[str] = field(default_factory=set)
    failures: Counter = field(default_factory=Counter)  # check name -> distinct failures
    examples: list[str] = field(default_factory=list)  # one line per failure
    errors: list[str] = field(default_factory=list)  # the engine's own errors (e.g. a bad schema)
    seconds: float = 0.0

    def add(self, other: "Figures") -> None:
        self.requests += other.requests
        self.operations |= other.operations
        self.failures.update(other.failures)
        self.examples += other.examples
        self.errors += other.errors
        self.seconds += other.seconds

    def summary(self) -> str:
        by_check = ", ".join(f"{name}: {n}" for name, n in sorted(self.failures.items())) or "none"
        return (f"{self.requests} requests, {len(self.operations)} operations, {self.seconds:.1f} s; "
                f"failures: {by_check}; engine errors: {len(self.errors)}")


def operation_roles(app) -> dict[tuple[str, str], tuple[str, ...]]:
    """(METHOD, OpenAPI path) -> the roles its view takes (web.requires), from the URL map."""
    roles = {}
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            handler = getattr(getattr(view, "view_class", None), method.lower(), view)
            roles[(method, path)] = getattr(handler, "roles", ())
    return roles


def run(app, keys: dict[str, str], *, mode: str, prefer: str, max_examples: int, seed: int,
        phases: tuple[str, ...] = ("examples", "coverage", "fuzzing", "stateful"),
        max_steps: int | None = None, progress=None, only: str | None = None) -> Figures:
    """The runs of one caller: `keys` maps a role to its key for this mode; each operation takes
    the `prefer`red role's key if it takes that role, else the key of another role it takes
    (operations none of `keys` may call take none). One engine run per key taken (schemathesis
    takes the document's `bearer` auth once per run), over every operation (`only`: those whose
    path it matches)."""
    # The run's settings, once for the whole document. Carried by per-operation entries (as they
    # were), schemathesis looked them up and merged them for the operation at every draw, a
    # quarter of the run's time; and an `include` filter of each key's operations had no effect
    # beside them: each run has always called every operation.
    common = {"continue-on-failure": True,
              "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
              "generation": {"max-examples": max_examples, "deterministic": True, "database": "none"},
              "phases": {name: {"enabled": name in phases} for name in ("examples", "coverage", "fuzzing", "stateful")}}
    if max_steps and "stateful" in phases:
        common["phases"]["stateful"]["max-steps"] = max_steps
    taken: dict[str | None, None] = {}  # the keys taken, in the order of the operations
    for (_, path), allowed in operation_roles(app).items():
        if not path.startswith("/v1/") or path == "/v1/openapi.json" or (only and not re.search(only, path)):
            continue
        chosen = prefer if prefer in allowed else next((r for r in allowed if r in keys), None)
        if allowed and chosen is None:
            continue
        taken.setdefault(keys[chosen] if chosen else None)
    _MODE["live"] = mode == "live"
    figures = Figures()
    for key in taken:
        # The key goes through schemathesis's own auth for the document's `bearer` scheme, not as a
        # plain header: the coverage phase then knows which requests it sent without a key (a
        # header it cannot see would be sent valid in a request it believes negated).
        config = {"seed": seed, "suppress-health-check": ["all"], **common}
        if key:
            config["auth"] = {"openapi": {"bearer": {"bearer": key}}}
        figures.add(_execute(app, schemathesis.Config.from_dict(config), only, f"[{mode}/{prefer}]", progress))
    return figures


def _execute(app, config, only: str | None, label: str, progress) -> Figures:
    schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", app, config=config)
    if only:
        schema = schema.include(path_regex=only)
    figures = Figures()
    started = time.monotonic()
    seen = set()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, (events.ScenarioFinished, events.FuzzScenarioFinished)):
            recorder = event.recorder
            figures.requests += len(recorder.interactions)
            if progress:
                progress(f"{event.phase} {recorder.label}: {len(recorder.interactions)} requests, "
                         f"{time.monotonic() - started:.1f} s")
            for node in recorder.cases.values():
                op = node.value.operation.label
                figures.operations.add(op)
            for case_id, checks in recorder.checks.items():
                for check in checks:
                    if check.failure_info is None or check.name not in CHECKS:
                        continue
                    failure = check.failure_info.failure
                    key = (check.name, getattr(failure, "operation", ""), failure.title, getattr(failure, "message",
                                                                                                 ""))
                    if key in seen:
                        continue
                    seen.add(key)
                    figures.failures[check.name] += 1
                    case = recorder.cases[case_id].value
                    interaction = recorder.interactions.get(case_id)
                    answer = interaction.response if interaction else None
                    answered = (f" -> {answer.status_code} {(answer.content or b'')[:300].decode(errors='replace')}"
                                if answer is not None else "")
                    figures.examples.append(line := f"{label} {check.name}: {case.operation.label}: {failure.title}: "
                                            f"{(getattr(failure, 'message', '') or '')[:300]} | "
                                            f"{check.failure_info.code_sample[:600]}{answered}")
                    if progress:
                        progress(line)
        elif isinstance(event, events.NonFatalError):
            figures.errors.append(f"{event.label}: {event.value!r}"[:500])
        elif isinstance(event, events.FatalError):
            figures.errors.append(f"fatal: {event.exception!r}"[:1000])
    figures.seconds = time.monotonic() - started
    return figures


def documented_operations(app) -> set[str]:
    spec = app.test_client().get("/v1/openapi.json").json
    return {f"{method.upper()} {path}" for path, operations in spec["paths"].items()
            for method in operations if method in ("get", "put", "post", "patch", "delete")}


def callers(tenant) -> list[tuple[str, str, dict[str, str]]]:
    """(mode, preferred role, keys by role) of each run: an admin key in each mode (operations
    only a provider may call get that mode's provider key), then a provider key."""
    keys = {mode: {"admin": caller.key, "provider": tenant.provider(mode).key}
            for mode, caller in tenant.admin.items()}
    return [("test", "admin", keys["test"]), ("live", "admin", keys["live"]),
            ("test", "provider", {"provider": keys["test"]["provider"]})]


def run_all(app, tenant, **options) -> Figures:
    total = Figures()
    for mode, prefer, keys in callers(tenant):
        total.add(run(app, keys, mode=mode, prefer=prefer, **options))
    return total
