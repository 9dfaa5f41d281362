#!/usr/bin/env python
"""Usage metering benchmark: usage event intake, the rating of a period's usage and current usage.

Not a pytest test. Run from the repository root with the project's virtualenv:

    .venv/bin/python bench/metering.py                 # 10,000,000 events over 100,000 subscriptions
    .venv/bin/python bench/metering.py --scale-check   # the same, then at a tenth of the size
    .venv/bin/python bench/metering.py --quick         # 20,000 events over 200 subscriptions, seconds
    .venv/bin/python bench/metering.py --events 1000000 --subscriptions 10000   # scaled down

What it does, per size (database ...aggregator_bench_metering, `_quick`, `_tenth`):
  1. setup, in a child process: the database made afresh (migrations), a tenant (UTC, anchor
     day 25), through the API (Flask test client): a provider, a customer, a `sum` meter
     `api_calls` and a plan pricing it (graduated, 1,000 included, with thresholds at 80/90/100 %
     so that intake checks them); one subscription through the API, cloned in SQL into
     --subscriptions running since 2026-06-01 (with their start change). Then --events events of
     the period 2026-09-25 .. 2026-10-24 written by generate_series straight into `usage_events`
     (its month's partition), each subscription's in --hours distinct hours of the period, and
     their `usage_rollups` computed from them in SQL (as intake would have left them: count,
     sum, max, first and last sample per hour). VACUUM (ANALYZE), CHECKPOINT.
  2. intake (full size only), in a child process, into the open period of the clock (the 10M
     events stay in the table): batches of --batch events (random subscriptions, values, in the
     last hours) through `metering.events_service.record_usage_events` (each batch its own
     transaction: validation, idempotency, period lock, store, rollups, thresholds, commit);
     then the same rows written by COPY into the same table, one batch a transaction (the
     baseline); then single events through the use case; then through HTTP (Flask test client,
     the whole request: key, JSON, schema) batches, single events and, beside them, single
     bills (`POST /v1/bills`, the single-bill rate measured in the same run).
  3. current usage, in a child process: `usage_service.current_usage` of one subscription as of
     a moment of the generated period (the one holding the events), --current-calls times: p50,
     p99; and EXPLAIN of its rollup query.
  4. rating, in a fresh child process: a bare `SELECT subscription_id, meter_id, sum(value)
     FROM usage_events WHERE period_start = P GROUP BY 1, 2` twice (the first warms the cache;
     the second is the baseline), then `metering.rating_service.rate_usage(settings, period)`
     timed, with the memory sampled as bench/close.py does; its bills checked (one per
     subscription, quantities summing to the events' sum), then rolled back.

Targets (issue 19): intake >= 0.5x COPY and >= 30,000 events/s; single events >= single
bills; rating <= 2x the GROUP BY, peak RSS the same at a tenth (--scale-check); current usage
p99 < 20 ms.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from _common import _size_db, _source
from close import BIN, CLK_TCK, ROOT, RssSampler, _pg_backend_ticks, _vmrss_kb, log, recreate_database, urls

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/aggregator_bench_metering"
PERIOD = date(2026, 9, 25)  # the generated period (anchor 25, UTC): 2026-09-25 .. 2026-10-25T00:00Z
PERIOD_AT = datetime(2026, 9, 25, tzinfo=timezone.utc)
PERIOD_HOURS = 30 * 24
INTAKE_NOW = datetime(2026, 11, 10, 12, tzinfo=timezone.utc)  # intake's clock: period 2026-10-25, open
CURRENT_NOW = datetime(2026, 10, 20, 12, tzinfo=timezone.utc)  # in the generated period
TARGET_COPY_RATIO, TARGET_EVENTS_PER_S, TARGET_RATING_RATIO, TARGET_P99_MS = 0.5, 30_000, 2.0, 20.0
RUN = f"{time.time():.0f}"  # event ids of this run: --reuse sends new events, not replays
EVENT_COLUMNS = ["period_start", "provider_id", "event_id", "tenant_id", "livemode", "subscription_id", "meter_id",
                 "timestamp", "value", "dims", "properties", "fingerprint", "received_at"]


def _app(args):
    app_url = urls(args.database_url)[0]
    os.environ["AGGREGATOR_DATABASE_URL"] = app_url
    from aggregator import create_app

    return create_app()


def _facts(db) -> dict:
    import sqlalchemy as sa

    row = db.session.execute(sa.text(
        "SELECT t.id, p.id, m.id FROM tenants t, providers p, meters m LIMIT 1")).one()
    return {"tenant_id": row[0], "provider_id": row[1], "meter_id": row[2]}


# --- setup (child process) -------------------------------------------------------------------

def setup(args) -> dict:
    import psycopg

    app_url, conninfo, admin_conninfo, dbname = urls(args.database_url)
    t0 = time.monotonic()
    log(f"recreating database {dbname!r}")
    recreate_database(admin_conninfo, dbname)
    env = dict(os.environ, AGGREGATOR_DATABASE_URL=app_url, FLASK_DEBUG="0")
    env.pop("FLASK_APP", None)
    done = subprocess.run([str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"flask db upgrade failed:\n{done.stdout}\n{done.stderr}")
    app = _app(args)
    from aggregator.accounts import service as accounts
    from aggregator.accounts.keys import Principal
    from aggregator.db import db

    created = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with app.app_context():
        tenant_id = accounts.create_tenant(dict(
            name="Metering bench", legal_name="Metering Bench Ltd", timezone="UTC", default_currency="USD",
            period_anchor_day=25, charge_day=2, default_tax_rate="0.2", invoice_prefix="INV",
            invoice_review="auto"), created).tenant.id
        admin_key = accounts.issue_admin_key(Principal(tenant_id, True, "admin", None, "bench"), created).plaintext
        db.session.remove()
    client = app.test_client()

    def post(key, path, body):
        response = client.post(path, json=body, headers={"Authorization": f"Bearer {key}"})
        if response.status_code != 201:
            raise RuntimeError(f"POST {path} -> {response.status_code}: {response.get_data(as_text=True)[:500]}")
        return response.get_json()

    provider = post(admin_key, "/v1/providers", {"name": "Metered Apps", "revenue_share_rate": "0.30"})
    post(admin_key, "/v1/customers", {"external_id": "c1", "name": "Customer 1", "email": "c1@example.com"})
    post(admin_key, "/v1/meters", {"code": "api_calls", "name": "API calls", "aggregation": "sum", "unit": "call"})
    key = provider["api_key"]
    post(key, "/v1/plans", {"code": "metered", "name": "Metered", "currency": "USD", "fees": [
        {"name": "API", "price": "10.00", "timing": "in_arrears", "usage": [
            {"meter": "api_calls", "name": "API calls", "model": "graduated", "included_units": "1000",
             "tiers": [{"up_to": "100000", "unit_amount": "0.0005"}, {"up_to": None, "unit_amount": "0.0002"}],
             "thresholds": [80, 90, 100]}]}]})
    template = post(key, "/v1/subscriptions", {"customer": "c1", "plan": "metered"})["id"]
    n_subs, n_events, hours = args.subscriptions, args.events, args.hours
    with psycopg.connect(conninfo) as conn:
        t = time.monotonic()
        ids = "'sub_mb' || lpad(i::text, 8, '0')"
        conn.execute(
            "INSERT INTO subscriptions SELECT (jsonb_populate_record(NULL::subscriptions, to_jsonb(t)"
            f" || jsonb_build_object('id', {ids}, 'external_billing_id', 'ext-' || i,"
            " 'starts_at', '2026-06-01T00:00:00+00:00', 'created_at', '2026-06-01T00:00:00+00:00',"
            " 'updated_at', '2026-06-01T00:00:00+00:00'))).*"
            " FROM subscriptions t, generate_series(0, %s - 1) i WHERE t.id = %s", (n_subs, template))
        conn.execute(
            "INSERT INTO subscription_changes SELECT (jsonb_populate_record(NULL::subscription_changes, to_jsonb(c)"
            f" || jsonb_build_object('subscription_id', {ids}, 'at', '2026-06-01T00:00:00+00:00',"
            " 'recorded_at', '2026-06-01T00:00:00+00:00'))).*"
            " FROM subscription_changes c, generate_series(0, %s - 1) i WHERE c.subscription_id = %s",
            (n_subs, template))
        conn.commit()
        log(f"{n_subs:,} subscriptions: {time.monotonic() - t:.1f}s")
        facts = {"tenant_id": tenant_id, "provider_id": provider["id"]}
        facts["meter_id"] = conn.execute("SELECT id FROM meters").fetchone()[0]
        t = time.monotonic()
        conn.execute("CREATE TABLE IF NOT EXISTS usage_events_y2026m09 PARTITION OF usage_events"
                     " FOR VALUES FROM ('2026-09-01') TO ('2026-10-01')")
        conn.execute("SET synchronous_commit = off")
        # event i: subscription i % S, its (i // S)-th, in hour slot (i // S) % H of the subscription's
        # H hours (spread over the period, shifted per subscription), a second within the hour
        step = PERIOD_HOURS // hours
        conn.execute(
            f"INSERT INTO usage_events ({', '.join(EVENT_COLUMNS)})"
            " SELECT %(p)s, %(prov)s, 'gen-' || i, %(tenant)s, true, 'sub_mb' || lpad((i %% %(s)s)::text, 8, '0'),"
            " %(meter)s, %(at)s::timestamptz + make_interval(hours => (((i / %(s)s) %% %(h)s) * %(step)s"
            "   + (i %% %(s)s) %% %(step)s)::int, secs => ((i / %(s)s / %(h)s) * 7 + i %% 13) %% 3600),"
            " 1 + (i::bigint * 7919) %% 1000, '', '{}', decode(md5(i::text), 'hex'), %(at)s::timestamptz"
            "   + interval '31 days'"
            " FROM generate_series(0, %(e)s - 1) i",
            {"p": PERIOD, "prov": provider["id"], "tenant": tenant_id, "s": n_subs, "meter": facts["meter_id"],
             "at": PERIOD_AT, "h": hours, "step": step, "e": n_events})
        conn.commit()
        log(f"{n_events:,} events: {time.monotonic() - t:.1f}s")
        t = time.monotonic()
        conn.execute(
            "INSERT INTO usage_rollups (subscription_id, meter_id, dims, period_start, hour, tenant_id, livemode,"
            " events, total, maximum, first_at, first_value, last_at, last_value, tw_inner)"
            " SELECT subscription_id, meter_id, dims, period_start, date_trunc('hour', timestamp), min(tenant_id),"
            " bool_and(livemode), count(*), sum(value), max(value), min(timestamp),"
            " (array_agg(value ORDER BY timestamp, received_at, event_id))[1], max(timestamp),"
            " (array_agg(value ORDER BY timestamp DESC, received_at DESC, event_id DESC))[1], 0"
            " FROM usage_events WHERE period_start = %s"
            " GROUP BY subscription_id, meter_id, dims, period_start, date_trunc('hour', timestamp)", (PERIOD,))
        conn.execute("UPDATE meters SET first_event_at = %s", (PERIOD_AT,))
        conn.commit()
        n_rollups = conn.execute("SELECT count(*) FROM usage_rollups").fetchone()[0]
        log(f"{n_rollups:,} rollups: {time.monotonic() - t:.1f}s")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        t = time.monotonic()
        conn.execute("VACUUM (ANALYZE)")
        conn.execute("CHECKPOINT")
        sizes = dict(conn.execute(
            "SELECT relname, pg_total_relation_size(oid) FROM pg_class WHERE relname IN"
            " ('usage_events_y2026m09', 'usage_rollups')").fetchall())
        log(f"vacuum analyze + checkpoint: {time.monotonic() - t:.1f}s")
    prepared = {**facts, "provider_key": key, "subscriptions": n_subs, "events": n_events, "rollups": n_rollups,
            "events_mb": round(sizes.get("usage_events_y2026m09", 0) / 2**20),
            "rollups_mb": round(sizes.get("usage_rollups", 0) / 2**20),
            "setup_seconds": round(time.monotonic() - t0, 1)}
    with psycopg.connect(conninfo) as conn:  # for --reuse
        conn.execute("CREATE TABLE bench_prepared (doc jsonb)")
        conn.execute("INSERT INTO bench_prepared VALUES (%s)", (json.dumps(prepared),))
    return prepared


def reused(args) -> dict:
    import psycopg

    with psycopg.connect(urls(args.database_url)[1]) as conn:
        return conn.execute("SELECT doc FROM bench_prepared").fetchone()[0]


# --- intake (child process) ------------------------------------------------------------------

def _requests(rng: random.Random, tag: str, n: int, n_subs: int, now: datetime) -> list:
    from aggregator.metering.events_service import UsageEventRequest

    return [UsageEventRequest(f"{RUN}-{tag}-{i}", f"sub_mb{rng.randrange(n_subs):08d}", "api_calls",
                              now - timedelta(seconds=rng.randrange(1, 6 * 3600)), str(rng.randrange(1, 100)),
                              {"host": f"h{rng.randrange(50)}"}) for i in range(n)]


def intake(args) -> dict:
    import psycopg

    app = _app(args)
    _, conninfo, _, dbname = urls(args.database_url)
    from aggregator.accounts.keys import Principal
    from aggregator.db import db
    from aggregator.metering.events_service import record_usage_events

    prepared = json.loads(args.prepared)
    with app.app_context():
        facts = _facts(db)
        db.session.remove()
    principal = Principal(facts["tenant_id"], True, "provider", facts["provider_id"], "bench", 25, "UTC")
    rng = random.Random(args.seed)
    out: dict = {"batch": args.batch}

    def use_case(batches: list[list], label: str) -> dict:
        with app.app_context():
            record_usage_events(principal, _requests(rng, f"warm-{label}", 10, args.subscriptions, INTAKE_NOW),
                                INTAKE_NOW)  # imports, statement caches, the partition
            db.session.remove()
        n = sum(len(b) for b in batches)
        pg0, c0, t0 = _pg_backend_ticks(dbname), os.times(), time.perf_counter()
        with app.app_context():
            for batch in batches:
                outcomes = record_usage_events(principal, batch, INTAKE_NOW)
                assert all(o.event is not None and not o.replayed for o in outcomes), \
                    [o.error for o in outcomes if o.error][:3]
            db.session.remove()
        wall, c1 = time.perf_counter() - t0, os.times()
        return {"events": n, "wall_s": round(wall, 3), "events_per_s": round(n / wall),
                "python_cpu_ms_per_1000": round((c1.user - c0.user + c1.system - c0.system) / n * 1e6, 1),
                "postgres_cpu_ms_per_1000": round((_pg_backend_ticks(dbname) - pg0) / CLK_TCK / n * 1e6, 1)}

    batches = [_requests(rng, f"b{k}", args.batch, args.subscriptions, INTAKE_NOW) for k in range(args.batches)]
    log(f"intake: {args.batches} batches of {args.batch} through record_usage_events")
    out["use_case_batch"] = use_case(batches, "batch")

    # the baseline: the same rows (as the store writes them, other ids) by COPY, a batch a transaction
    from aggregator.metering.events_service import _fingerprint

    lines_of = []
    for batch in batches:
        lines = []
        for r in batch:
            props = json.dumps(r.properties)
            fp = _fingerprint(r.subscription, facts["meter_id"], int(r.value), r.timestamp, r.properties).hex()
            lines.append(f"2026-10-25\t{facts['provider_id']}\tcopy-{r.id}\t{facts['tenant_id']}\tt\t{r.subscription}"
                         f"\t{facts['meter_id']}\t{r.timestamp.isoformat()}\t{r.value}\t\t{props}\t\\\\x{fp}\t"
                         f"{INTAKE_NOW.isoformat()}")
        lines_of.append("\n".join(lines) + "\n")
    with psycopg.connect(conninfo) as conn:
        pg0, t0 = _pg_backend_ticks(dbname), time.perf_counter()
        for text in lines_of:
            with conn.cursor() as cur, cur.copy(f"COPY usage_events ({', '.join(EVENT_COLUMNS)}) FROM STDIN") as cp:
                cp.write(text)
            conn.commit()
        wall = time.perf_counter() - t0
        n = sum(len(b) for b in batches)
        out["copy"] = {"events": n, "wall_s": round(wall, 3), "events_per_s": round(n / wall),
                       "postgres_cpu_ms_per_1000": round((_pg_backend_ticks(dbname) - pg0) / CLK_TCK / n * 1e6, 1)}
    out["copy_ratio"] = round(out["use_case_batch"]["events_per_s"] / out["copy"]["events_per_s"], 3)
    log(f"intake: use case {out['use_case_batch']['events_per_s']:,}/s, COPY {out['copy']['events_per_s']:,}/s")

    singles = [[r] for r in _requests(rng, "s", args.singles, args.subscriptions, INTAKE_NOW)]
    out["use_case_single"] = use_case(singles, "single")

    # through HTTP (the test client; the live clock is the real one)
    key = prepared["provider_key"]
    client = app.test_client()
    headers = {"Authorization": f"Bearer {key}"}
    real_now = datetime.now(timezone.utc)

    def bodies(tag, n):
        return [{"id": r.id, "subscription": r.subscription, "meter": r.meter, "value": r.value,
                 "timestamp": r.timestamp.isoformat(), "properties": dict(r.properties)}
                for r in _requests(rng, tag, n, args.subscriptions, real_now)]

    def http(path, payloads, check):
        t0 = time.perf_counter()
        for body in payloads:
            extra = {"Idempotency-Key": body.pop("idempotency_key")} if "idempotency_key" in body else {}
            response = client.post(path, json=body, headers={**headers, **extra})
            check(response)
        return time.perf_counter() - t0

    def ok_batch(response):
        assert response.status_code == 200 and all(r["status"] == 201 for r in response.get_json()["data"]), \
            response.get_data(as_text=True)[:500]

    def ok_single(response):
        assert response.status_code == 201, response.get_data(as_text=True)[:500]

    http("/v1/usage_events/batch", [{"events": bodies("hw", 10)}], ok_batch)  # warm
    http_batches = [{"events": bodies(f"hb{k}", args.batch)} for k in range(args.http_batches)]
    wall = http("/v1/usage_events/batch", http_batches, ok_batch)
    n = args.batch * args.http_batches
    out["http_batch"] = {"events": n, "wall_s": round(wall, 3), "events_per_s": round(n / wall)}
    single_bodies = bodies("hs", args.singles)
    http("/v1/usage_events", single_bodies[:5], ok_single)
    wall = http("/v1/usage_events", single_bodies[5:], ok_single)
    out["http_single"] = {"events": len(single_bodies) - 5, "wall_s": round(wall, 3),
                          "per_s": round((len(single_bodies) - 5) / wall)}
    bills = [{"customer": "c1", "amount": "19.99", "currency": "USD", "revenue_share": True,
              "description": "Pro plan", "idempotency_key": f"bill-{i}"} for i in range(args.singles)]
    http("/v1/bills", bills[:5], ok_single)
    wall = http("/v1/bills", bills[5:], ok_single)
    out["http_single_bill"] = {"bills": len(bills) - 5, "wall_s": round(wall, 3),
                               "per_s": round((len(bills) - 5) / wall)}
    out["single_ratio"] = round(out["http_single"]["per_s"] / out["http_single_bill"]["per_s"], 3)
    out["load_avg"] = os.getloadavg()
    return out


# --- current usage (child process) -----------------------------------------------------------

def current(args) -> dict:
    app = _app(args)
    import sqlalchemy as sa

    from aggregator.accounts.keys import Principal
    from aggregator.db import db
    from aggregator.metering.usage_service import current_usage

    with app.app_context():
        facts = _facts(db)
        db.session.remove()
    principal = Principal(facts["tenant_id"], True, "provider", facts["provider_id"], "bench", 25, "UTC")
    sub = f"sub_mb{args.subscriptions // 2:08d}"
    times = []
    with app.app_context():
        for i in range(args.current_calls + 5):
            t = time.perf_counter()
            usage = current_usage(principal, sub, CURRENT_NOW)
            db.session.rollback()
            if i >= 5:
                times.append((time.perf_counter() - t) * 1000)
        expected = db.session.scalar(sa.text(
            "SELECT sum(value) FROM usage_events WHERE subscription_id = :s AND period_start = :p"
            " AND timestamp < date_trunc('hour', CAST(:now AS timestamptz)) + interval '1 hour'"),
            {"s": sub, "p": PERIOD, "now": CURRENT_NOW})
        plan = db.session.execute(sa.text(
            "EXPLAIN (ANALYZE, BUFFERS) SELECT subscription_id, meter_id, dims, hour, events, total FROM usage_rollups"
            " WHERE subscription_id IN (:s) AND meter_id IN (:m) AND period_start = :p AND hour <= :now"),
            {"s": sub, "m": facts["meter_id"], "p": PERIOD, "now": CURRENT_NOW}).scalars().all()
        db.session.remove()
    times.sort()
    (line,) = usage["data"]
    return {"subscription": sub, "calls": len(times), "ms_p50": round(statistics.median(times), 2),
            "ms_p99": round(times[min(len(times) - 1, int(len(times) * 0.99))], 2), "ms_max": round(times[-1], 2),
            "quantity": line["quantity"], "quantity_ok": int(line["quantity"]) == int(expected or 0),
            "explain": plan, "load_avg": os.getloadavg()}


# --- rating (child process) ------------------------------------------------------------------

def rate(args) -> dict:
    import gc

    import psycopg

    app = _app(args)
    _, conninfo, _, dbname = urls(args.database_url)
    import sqlalchemy as sa

    from aggregator.consolidate.close_service import tenant_period, tenant_settings
    from aggregator.db import db
    from aggregator.metering.rating_service import rate_usage

    out: dict = {}
    with psycopg.connect(conninfo) as conn:
        conn.execute("SET max_parallel_workers_per_gather = 2")  # the server's default, said
        group_by = ("SELECT subscription_id, meter_id, sum(value) FROM usage_events WHERE period_start = %s"
                    " GROUP BY 1, 2")
        times = []
        for _ in range(2):
            t = time.perf_counter()
            rows = conn.execute(group_by, (PERIOD,)).fetchall()
            times.append(time.perf_counter() - t)
        out["group_by_s"] = [round(x, 3) for x in times]
        out["group_by_rows"] = len(rows)
        expected_total = sum(int(r[2]) for r in rows)
        del rows
        conn.rollback()
    with app.app_context():
        facts = _facts(db)
        settings = tenant_settings(facts["tenant_id"], True)
        period = tenant_period(settings, PERIOD)
        db.session.commit()
        gc.collect()
        rss_before = _vmrss_kb()
        sampler = RssSampler()
        sampler.start()
        pg0, c0, t0 = _pg_backend_ticks(dbname), os.times(), time.perf_counter()
        report = rate_usage(settings, period)
        wall, c1 = time.perf_counter() - t0, os.times()
        pg1 = _pg_backend_ticks(dbname)
        peak = sampler.stop()
        charges = db.session.execute(sa.text(
            "SELECT count(*), sum(CAST(quantity AS numeric)) FROM usage_charges WHERE period_start = :p"),
            {"p": PERIOD}).one()
        db.session.rollback()
    out.update({
        "subscriptions": report.subscriptions, "charges": report.charges, "bills_created": report.bills_created,
        "rating_s": round(wall, 3), "python_cpu_s": round(c1.user - c0.user + c1.system - c0.system, 2),
        "postgres_cpu_s": round((pg1 - pg0) / CLK_TCK, 2), "rss_before_mb": round(rss_before / 1024, 1),
        "rss_peak_mb": round(peak / 1024, 1), "rss_mb_at_10_25_50_75_100pct": sampler.at_fractions(),
        "ratio": round(wall / times[-1], 3), "quantities_ok": charges[0] == report.charges
        and int(charges[1] or 0) == expected_total, "load_avg": os.getloadavg()})
    return out


# --- orchestration ----------------------------------------------------------------------------

def _child(phase: str, args, extra: list[str] = ()) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--phase", phase, "--database-url", args.database_url,
           "--subscriptions", str(args.subscriptions), "--events", str(args.events), "--hours", str(args.hours),
           "--batch", str(args.batch), "--batches", str(args.batches), "--http-batches", str(args.http_batches),
           "--singles", str(args.singles), "--current-calls", str(args.current_calls), "--seed", str(args.seed),
           *extra]
    done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{phase} failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_size(args, label: str, with_intake: bool) -> dict:
    log(f"[{label}] {args.events:,} events over {args.subscriptions:,} subscriptions ({args.hours} hours each), "
        f"database {urls(args.database_url)[3]}")
    prepared = reused(args) if args.reuse else _child("setup", args)
    result = {"label": label, "setup": prepared}
    only = set(args.only or ("intake", "current", "rating"))
    if with_intake and "intake" in only:
        result["intake"] = _child("intake", args, ["--prepared", json.dumps(prepared)])
    if "current" in only:
        log(f"[{label}] current usage, {args.current_calls} calls")
        result["current"] = _child("current", args)
    if "rating" in only:
        log(f"[{label}] rating")
        result["rating"] = _child("rate", args)
        log(f"[{label}] rating {result['rating']['rating_s']} s, GROUP BY {result['rating']['group_by_s']} s")
    return result


def format_report(runs: list[dict], quick: bool) -> list[str]:
    lines, verdicts = [], []
    big = runs[0]
    i = big.get("intake")
    if i:
        lines.append(f"intake ({i['batch']:,} events a batch; per 1,000 events: py / pg CPU ms):")
        for key, name in (("use_case_batch", "record_usage_events, batches"), ("copy", "COPY, same rows, batches"),
                          ("use_case_single", "record_usage_events, single events"),
                          ("http_batch", "POST /v1/usage_events/batch (test client)")):
            r = i[key]
            cpu = f"  {r.get('python_cpu_ms_per_1000', '-')} / {r.get('postgres_cpu_ms_per_1000', '-')}"
            lines.append(f"  {name:<46}{r['events']:>8,} events {r['wall_s']:>8.2f} s {r['events_per_s']:>9,}/s{cpu}")
        lines.append(f"  {'POST /v1/usage_events (test client)':<46}{i['http_single']['events']:>8,} events "
                     f"{i['http_single']['wall_s']:>8.2f} s {i['http_single']['per_s']:>9,}/s")
        lines.append(f"  {'POST /v1/bills (test client), same run':<46}{i['http_single_bill']['bills']:>8,} bills  "
                     f"{i['http_single_bill']['wall_s']:>8.2f} s {i['http_single_bill']['per_s']:>9,}/s")
        verdicts += [
            f"batch intake {i['use_case_batch']['events_per_s']:,} events/s = x{i['copy_ratio']:.2f} COPY "
            f"({i['copy']['events_per_s']:,}/s) vs >= x{TARGET_COPY_RATIO} and >= {TARGET_EVENTS_PER_S:,}/s: "
            + ("MET" if i["copy_ratio"] >= TARGET_COPY_RATIO and i["use_case_batch"]["events_per_s"]
               >= TARGET_EVENTS_PER_S else "NOT MET"),
            f"single events {i['http_single']['per_s']:,}/s vs single bills {i['http_single_bill']['per_s']:,}/s "
            f"(x{i['single_ratio']:.2f}): " + ("MET" if i["single_ratio"] >= 1 else "NOT MET")]
    lines.append("rating and current usage:")
    lines.append(f"{'run':<7}{'events':>12}{'subs':>9}{'rollups':>11}{'GROUP BY s':>12}{'rating s':>10}{'ratio':>7}"
                 f"{'peak RSS':>10}{'py/pg cpu s':>13}{'cur p50':>9}{'cur p99':>9}")
    for r in runs:
        g, c, s = r.get("rating"), r.get("current"), r["setup"]
        line = f"{r['label']:<7}{s['events']:>12,}{s['subscriptions']:>9,}{s['rollups']:>11,}"
        line += (f"{g['group_by_s'][-1]:>12.2f}{g['rating_s']:>10.2f}{g['ratio']:>7.2f}{g['rss_peak_mb']:>9.0f}M"
                 f"{g['python_cpu_s']:>6.1f}/{g['postgres_cpu_s']:<6.1f}" if g else " " * 53)
        line += f"{c['ms_p50']:>9.2f}{c['ms_p99']:>9.2f}" if c else ""
        lines.append(line)
    if big.get("rating"):
        verdicts.append(f"rating x{big['rating']['ratio']:.2f} the GROUP BY vs <= x{TARGET_RATING_RATIO}: "
                        + ("MET" if big["rating"]["ratio"] <= TARGET_RATING_RATIO else "NOT MET"))
    if big.get("current"):
        verdicts.append(f"current usage p99 {big['current']['ms_p99']} ms vs < {TARGET_P99_MS} ms: "
                        + ("MET" if big["current"]["ms_p99"] < TARGET_P99_MS else "NOT MET"))
    if len(runs) > 1 and big.get("rating") and runs[1].get("rating"):
        ratio = big["rating"]["rss_peak_mb"] / runs[1]["rating"]["rss_peak_mb"]
        verdicts.append(f"rating peak RSS full/tenth {ratio:.2f} ({big['rating']['rss_peak_mb']:.0f} / "
                        f"{runs[1]['rating']['rss_peak_mb']:.0f} MB): " + ("SAME" if ratio <= 1.10 else "HIGHER"))
    lines += ["", "targets" + (" (--quick: not comparable)" if quick else "") + ":"] + ["  " + v for v in verdicts]
    if big.get("current"):
        lines.append(f"current usage's rollup query ({big['label']}):")
        lines += ["  " + x for x in big["current"]["explain"]]
    return lines


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--database-url", default=None,
                   help=f"PostgreSQL database to DROP and recreate (default {DEFAULT_URL}, _quick with --quick)")
    p.add_argument("--subscriptions", type=int, default=100_000)
    p.add_argument("--events", type=int, default=10_000_000, help="events of the rated period")
    p.add_argument("--hours", type=int, default=24, 
                   help="distinct hours of the period each subscription's events fall in")
    p.add_argument("--batch", type=int, default=1000, help="events per intake batch")
    p.add_argument("--batches", type=int, default=60, help="batches through the use case (and by COPY)")
    p.add_argument("--http-batches", type=int, default=10)
    p.add_argument("--singles", type=int, default=500, help="single events (and single bills) sent")
    p.add_argument("--current-calls", type=int, default=300)
    p.add_argument("--seed", type=int, default=20261207)
    p.add_argument("--quick", action="store_true", help="20,000 events / 200 subscriptions, seconds")
    p.add_argument("--scale-check", action="store_true",
                   help="also run at a tenth of the size (database ..._tenth) and compare the rating's peak RSS")
    p.add_argument("--reuse", action="store_true", help="measure again on the databases of the last run")
    p.add_argument("--only", choices=["intake", "current", "rating"], action="append",
                   help="measure only this (repeatable; default: all)")
    p.add_argument("--json", metavar="PATH", help="write the figures as JSON to PATH")
    p.add_argument("--phase", choices=["setup", "intake", "current", "rate"], help=argparse.SUPPRESS)
    p.add_argument("--prepared", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick and args.phase is None:
        args.subscriptions, args.events, args.batches, args.http_batches = 200, 20_000, 3, 2
        args.singles, args.current_calls = 30, 20
    if args.database_url is None:
        args.database_url = DEFAULT_URL + ("_quick" if args.quick else "")
    if not 1 <= args.hours <= PERIOD_HOURS:
        p.error(f"--hours must be 1..{PERIOD_HOURS}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.phase:
        out = {"setup": setup, "intake": intake, "current": current, "rate": rate}[args.phase](args)
        print(json.dumps(out, default=str))
        return 0
    started = time.monotonic()
    runs = [run_size(args, "quick" if args.quick else "full", with_intake=True)]
    if args.scale_check:
        small = argparse.Namespace(**vars(args))
        small.subscriptions, small.events = args.subscriptions // 10, args.events // 10
        small.database_url = _size_db(args.database_url, "_tenth")
        runs.append(run_size(small, "tenth", with_intake=False))
    source = _source()
    result = {"benchmark": "metering", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "command": " ".join([sys.executable, *sys.argv]), "source": source, "runs": runs,
              "elapsed_s": round(time.monotonic() - started, 1)}
    print()
    print(f"aggregator metering benchmark — {result['date']} — {os.cpu_count()} cores — code {source.get('head')}"
          f"{' + uncommitted changes' if source.get('uncommitted_changes') else ''} — load "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print("\n".join(format_report(runs, args.quick)))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(f"figures written to {args.json}")
    print(f"elapsed {result['elapsed_s']} s")
    failures = [f"{r['label']}: rated quantities differ from the events' sum" for r in runs
                if r.get("rating") and not r["rating"]["quantities_ok"]]
    failures += [f"{r['label']}: current usage differs from the events' sum" for r in runs
                 if r.get("current") and not r["current"]["quantity_ok"]]
    for f in failures:
        print("FAILED: " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
