#!/usr/bin/env python
"""Invoice PDF benchmark: aggregator's WeasyPrintRenderer next to plain WeasyPrint defaults.

Not a pytest test; no database. Run from the repository root with the project's virtualenv:

    .venv/bin/python bench/pdf.py                  # full run, about 2-3 minutes
    .venv/bin/python bench/pdf.py --quick          # one render each, seconds
    .venv/bin/python bench/pdf.py --workers 2 --invoices 60 --json /tmp/pdf.json

What it measures, for a 1-page invoice (--lines1, default 10 bill lines) and a ~10-page one
(--lines10, default 300 lines), both built with aggregator.consolidate.document.
invoice_document from plain values (three/ten apps, some lines converted from EUR, one
carried credit, non-ASCII names), rendered from the template new invoices are issued with
(document.INVOICE_TEMPLATE, invoice_v2.html):

  renderer      WeasyPrintRenderer().render(template, context): the service's path (Jinja2,
                confined URL fetcher, FontConfiguration, the template's parsed stylesheet with
                its @font-face fonts and the image cache kept across renders, dpi=150, fonts
                subset by HarfBuzz when libharfbuzz-subset0 is installed);
  plain         weasyprint.HTML(string=<the same document, its stylesheet linked>,
                base_url=<template dir>).write_pdf() with WeasyPrint's defaults (default URL
                fetcher, a new FontConfiguration per document, so the stylesheet and its fonts
                are loaded for every document), interleaved with the renderer's renders;
  *-fonttools   the same two in a child process where WeasyPrint's font subsetter is forced
                onto its fontTools fallback (weasyprint.pdf.fonts.harfbuzz_subset set to None),
                i.e. WeasyPrint as it behaves without libharfbuzz-subset0 (as when the target
                was set);
  renderer-v1, plain-v1  the same on invoice_v1.html (system DejaVu fonts, content-measured
                tables, flex header), the template before v2 (unless --no-v1).

Each figure is the median over --repeat renders after --warmup renders: wall ms, CPU ms of
this process, PDF size, page count (pypdf). Then --workers N: --invoices K 1-page invoices
rendered by a multiprocessing pool (one WeasyPrintRenderer per process, warmed up in its
initializer) with 1 and N processes; invoices/s.

Then very large invoices (issue 20, --scale-sizes, default 1, 100, 1,000 and 5,000 bill lines):
the current template's document built as pdf_service builds it (past --line-limit lines, default
2,000 as the tenant setting, the detail summarized and every line attached as CSV) and rendered,
against invoice_v2.html (every line laid out) in the same process.

Target: the 1-page invoice through the renderer in <= 40% of the plain default's time and
<= 100 KB; a 5,000-line invoice in < 2 s.
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import multiprocessing as mp
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import warnings
from datetime import date, datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 0.40
TARGET_BYTES = 100 * 1024
V1 = "invoice_v1.html"
CLK_TCK = os.sysconf("SC_CLK_TCK")
APPS = ["Acme Analytics", "Beacon CRM", "Cobalt Mail", "Dynamo Forms", "Echo Backup", "Fable Docs",
        "Gamma Chat", "Helix Search", "Iris Billing", "Juno Calendar"]
DESCRIPTIONS = ["Pro plan – monthly subscription", "Seats ({n}) – Team plan", "API calls over quota: {n}k",
                "Storage add-on, {n} GB", "Support: premium tier (Müller & Søn)", "Usage — {n} reports generated",
                "Add-on: SSO & audit log", "Overage: {n} extra projects", "Starter plan", "Credits pack ({n})"]

warnings.simplefilter("ignore", DeprecationWarning)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- the invoice document -------------------------------------------------------------------

def make_context(n_lines: int, n_apps: int) -> dict:
    """Template values for an invoice with n_lines bill lines over n_apps apps (plus a credit)."""
    from aggregator import money
    from aggregator.consolidate.document import DocumentLine, invoice_document

    lines = []
    for i in range(n_lines):
        app = i * n_apps // n_lines
        amount = 100 + (i * 7919) % 40_000
        fx = i % 7 == 3
        lines.append(DocumentLine(
            "bill", f"prov_{app:02d}", DESCRIPTIONS[i % len(DESCRIPTIONS)].format(n=i % 97 + 1),
            date(2026, 9, 25), date(2026, 10, 24), amount,
            round(amount / 1.083412) if fx else None, "EUR" if fx else None, "1.083412" if fx else None))
    lines.append(DocumentLine("credit", None, "Credit carried from invoice INV-2026-000042", None, None,
                              -1500, None, None, None))
    subtotal = sum(line.amount for line in lines)
    tax = money.apply_rate(subtotal, money.parse_rate("0.2"))
    return invoice_document(
        invoice={"number": "INV-2026-000123", "currency": "USD", "issue_date": date(2026, 10, 25),
                 "period_start": date(2026, 9, 25), "period_end": date(2026, 10, 24),
                 "due_date": date(2026, 11, 2), "subtotal": subtotal, "tax": tax, "tax_rate": "0.2",
                 "total": subtotal + tax, "amount_due": subtotal + tax, "carried_credit": 0},
        lines=lines,
        provider_names={f"prov_{i:02d}": name for i, name in enumerate(APPS)},
        tenant={"legal_name": "Aggregator Marketplace Ltd", "logo": None,
                "address_lines": ["1 Harbour Street", "Level 12", "Sydney NSW 2000", "AU"]},
        customer={"name": "Müller & Søn GmbH", "email": "accounts@mueller-soen.example",
                  "external_id": "ext-0004711",
                  "address_lines": ["Hauptstraße 1", "10115 Berlin", "DE"]},
        locale="en",
    )


def template() -> str:
    from aggregator.consolidate.document import INVOICE_TEMPLATE

    return INVOICE_TEMPLATE


def check_pdf(pdf: bytes) -> tuple[int, bool]:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(pdf))
    text = "".join(page.extract_text() or "" for page in reader.pages)
    ok = all(s in text for s in ("INV-2026-000123", "Müller & Søn", "Amount due", "Acme Analytics"))
    return len(reader.pages), ok


# --- render functions -----------------------------------------------------------------------

def plain_default(html: str, base_url: str) -> bytes:
    import weasyprint

    return weasyprint.HTML(string=html, base_url=base_url).write_pdf()


def _quiet_weasyprint() -> None:
    logging.getLogger("weasyprint").setLevel(logging.ERROR)  # e.g. the fontTools fallback warning


def measure(fns: dict, warmup: int, repeat: int) -> dict:
    """Median wall/CPU ms of each function, renders interleaved (ABAB...) to spread noise."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    wall = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    last = {}
    for _ in range(repeat):
        for k, fn in fns.items():
            c0, t0 = time.process_time(), time.perf_counter()
            last[k] = fn()
            wall[k].append((time.perf_counter() - t0) * 1000)
            cpu[k].append((time.process_time() - c0) * 1000)
    out = {}
    for k in fns:
        pages, ok = check_pdf(last[k])
        out[k] = {"median_ms": round(statistics.median(wall[k]), 1), "min_ms": round(min(wall[k]), 1),
                  "cpu_ms": round(statistics.median(cpu[k]), 1), "bytes": len(last[k]), "pages": pages,
                  "text_ok": ok}
    return out


# --- very large invoices (issue 20) --------------------------------------------------------

V2 = "invoice_v2.html"


def scale_lines(n_lines: int, n_apps: int) -> list:
    """n_lines bill lines (consolidate.invoices.Line, as the service reads them) over n_apps apps."""
    from decimal import Decimal

    from aggregator.consolidate.invoices import Line

    lines = []
    for i in range(n_lines):
        app = i * n_apps // max(n_lines, 1)
        fx = i % 7 == 3
        amount = 100 + (i * 7919) % 40_000
        lines.append(Line("bill", amount, "USD", DESCRIPTIONS[i % len(DESCRIPTIONS)].format(n=i % 97 + 1),
                          f"bill_{i:06d}", f"prov_{app:02d}", None, date(2026, 9, 25), date(2026, 10, 24),
                          round(amount / 1.083412) if fx else None, "EUR" if fx else None,
                          Decimal("1.083412") if fx else None))
    return lines


def scale_document(lines: list, template_name: str, line_limit: int) -> dict:
    """What pdf_service.invoice_document_for builds for an invoice of these lines (no database):
    the document, and past the line limit (v3) the CSV of every line attached."""
    from aggregator import money
    from aggregator.consolidate.document import DocumentLine, Payment, invoice_document
    from aggregator.consolidate.line_export import lines_csv_bytes
    from aggregator.consolidate.render import Attachment

    names = {f"prov_{i:02d}": name for i, name in enumerate(APPS)}
    subtotal = sum(line.amount for line in lines)
    tax = money.apply_rate(subtotal, money.parse_rate("0.1"))
    v3 = template_name != V2
    large = v3 and len(lines) > line_limit
    document = invoice_document(
        invoice={"number": "INV-2026-000123", "currency": "USD", "issue_date": date(2026, 10, 25),
                 "period_start": date(2026, 9, 25), "period_end": date(2026, 10, 24),
                 "due_date": date(2026, 11, 2), "subtotal": subtotal, "tax": tax, "tax_rate": "0.1",
                 "total": subtotal + tax, "amount_due": subtotal + tax, "carried_credit": 0},
        lines=[DocumentLine(line.kind, line.provider_id, line.description, line.service_start, line.service_end,
                            line.amount, line.original_amount, line.original_currency,
                            None if line.fx_rate is None else money.format_rate(line.fx_rate)) for line in lines],
        provider_names=names,
        tenant={"legal_name": "Aggregator Marketplace Pty Ltd", "logo": None,
                "address_lines": ["1 Harbour Street", "Sydney NSW 2000", "AU"],
                "tax_ids": [{"type": "au_abn", "value": "51824753556"}], "tax_name": "GST", "title": "Tax invoice"},
        customer={"name": "Müller & Søn GmbH", "email": "accounts@mueller-soen.example", "external_id": "ext-0004711",
                  "address_lines": ["Hauptstraße 1", "10115 Berlin", "DE"],
                  "tax_ids": [{"type": "eu_vat", "value": "DE136695976"}]},
        locale="en_AU", payment=Payment("transfer", {"account_holder": "Aggregator Marketplace Pty Ltd",
                                                     "bsb": "062-000", "account_number": "12345678"}),
        line_limit=line_limit if v3 else None, lines_file="INV-2026-000123-lines.csv" if large else None)
    if large:
        document["attachments"] = [Attachment("INV-2026-000123-lines.csv", lines_csv_bytes(lines, names), "text/csv",
                                              "Every line of invoice INV-2026-000123", "Supplement")]
    return document


def scale_run(args, renderer) -> list[dict]:
    """Each size: the current template (document built, CSV attached past the limit, rendered)
    and v2 as the baseline, in this process, one after the other; median of --scale-repeat
    (v2 at 1,000 lines and more: one render, it takes seconds)."""
    out = []
    for name in (template(), V2):  # warm: the stylesheet, its fonts, the template
        renderer.render(name, scale_document(scale_lines(10, 1), name, args.line_limit))
    for n_lines in args.scale_sizes:
        lines = scale_lines(n_lines, min(10, max(1, n_lines // 10)) if n_lines > 1 else 1)
        row: dict = {"lines": n_lines}
        for label, name in (("v3", template()), ("v2", V2)):
            repeat = args.scale_repeat if label == "v3" or n_lines < 1000 else 1
            wall, cpu, pdf = [], [], b""
            for _ in range(repeat):
                c0, t0 = time.process_time(), time.perf_counter()
                pdf = renderer.render(name, scale_document(lines, name, args.line_limit))
                wall.append((time.perf_counter() - t0) * 1000)
                cpu.append((time.process_time() - c0) * 1000)
            from pypdf import PdfReader

            reader = PdfReader(io.BytesIO(pdf))
            text = reader.pages[0].extract_text() or ""
            row[label] = {"median_ms": round(statistics.median(wall), 1), "cpu_ms": round(statistics.median(cpu), 1),
                          "bytes": len(pdf), "pages": len(reader.pages), "renders": repeat,
                          "attached": list(reader.attachments), "text_ok": "INV-2026-000123" in text}
        log(f"{n_lines} lines: v3 {row['v3']['median_ms']:.0f} ms ({row['v3']['pages']} pages), "
            f"v2 {row['v2']['median_ms']:.0f} ms ({row['v2']['pages']} pages)")
        out.append(row)
    return out


def format_scale(rows: list[dict], line_limit: int) -> str:
    lines = ["", f"very large invoices: {template()} (document + CSV attachment past {line_limit:,} lines + render) "
             "against invoice_v2.html (document + render), same process",
             f"{'lines':>7}{'v3 ms':>10}{'v3 cpu':>9}{'pages':>6}{'KB':>7}  {'attached':<28}"
             f"{'v2 ms':>10}{'v2 cpu':>9}{'pages':>6}{'v3/v2':>7}", "-" * 99]
    for r in rows:
        v3, v2 = r["v3"], r["v2"]
        lines.append(f"{r['lines']:>7,}{v3['median_ms']:>10,.1f}{v3['cpu_ms']:>9,.1f}{v3['pages']:>6}"
                     f"{v3['bytes'] / 1024:>7.1f}  {', '.join(v3['attached']) or '-':<28}{v2['median_ms']:>10,.1f}"
                     f"{v2['cpu_ms']:>9,.1f}{v2['pages']:>6}{v3['median_ms'] / v2['median_ms']:>7.2f}")
    big = [r for r in rows if r["lines"] >= 5000]
    if big:
        v3 = big[0]["v3"]
        lines.append(f"target, {big[0]['lines']:,} lines in < 2 s: {v3['median_ms']:,.0f} ms wall "
                     f"({'MET' if v3['median_ms'] < 2000 else 'NOT MET'}), {v3['cpu_ms']:,.0f} ms CPU "
                     f"({'MET' if v3['cpu_ms'] < 2000 else 'NOT MET'}; the wall time of a render on an idle core)")
    return "\n".join(lines)


# --- the worker pool ------------------------------------------------------------------------

_worker_renderer = None


def _pool_init(context: dict) -> None:
    global _worker_renderer
    warnings.simplefilter("ignore", DeprecationWarning)
    _quiet_weasyprint()
    from aggregator.consolidate.render import WeasyPrintRenderer

    _worker_renderer = WeasyPrintRenderer()
    _worker_renderer.render(template(), context)  # warm: fonts, stylesheet, template, caches


def _pool_render(context: dict) -> int:
    return len(_worker_renderer.render(template(), context))


def pool_throughput(processes: int, contexts: list[dict]) -> dict:
    ctx = mp.get_context("fork")
    with ctx.Pool(processes, initializer=_pool_init, initargs=(contexts[0],)) as pool:
        pool.map(_pool_render, contexts[:processes], chunksize=1)  # every worker is up and warm
        pids = [worker.pid for worker in pool._pool]
        c0, m0 = sum(_proc_ticks(pid) for pid in pids), _machine_busy()
        t0 = time.perf_counter()
        sizes = pool.map(_pool_render, contexts, chunksize=1)
        wall = time.perf_counter() - t0
        c1, m1 = sum(_proc_ticks(pid) for pid in pids), _machine_busy()
    busy = ((m1[0] - m1[1]) - (m0[0] - m0[1])) / max(1, m1[0] - m0[0]) * (os.cpu_count() or 1)
    return {"processes": processes, "invoices": len(contexts), "seconds": round(wall, 2),
            "invoices_per_s": round(len(contexts) / wall, 2), "mean_bytes": round(sum(sizes) / len(sizes)),
            "workers_cpu_s": round((c1 - c0) / CLK_TCK, 2), "machine_busy_cores": round(busy, 2)}


def _proc_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return 0
    fields = data[data.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def _machine_busy() -> tuple[int, int]:
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    return sum(parts[:8]), parts[3] + parts[4]


# --- phases ---------------------------------------------------------------------------------

def variants(args, renderer, context: dict) -> dict:
    """The render functions compared on one invoice (see the module doc)."""
    from aggregator.consolidate.render import TEMPLATE_DIR

    base = TEMPLATE_DIR.as_uri() + "/"
    current, fns = template(), {}
    html = renderer.standalone_html(current, context)
    fns["renderer"] = lambda: renderer.render(current, context)
    fns["plain"] = lambda: plain_default(html, base)
    if not args.no_v1:
        html_v1 = renderer.standalone_html(V1, context)
        fns["renderer-v1"] = lambda: renderer.render(V1, context)
        fns["plain-v1"] = lambda: plain_default(html_v1, base)
    return fns


def fonttools_baseline(args) -> dict:
    """Child process: the same variants with WeasyPrint's fontTools subsetter forced."""
    _quiet_weasyprint()
    import weasyprint  # noqa: F401  (loads the libraries first)
    from weasyprint.pdf import fonts

    fonts.harfbuzz_subset = None  # what WeasyPrint 70 does when libharfbuzz-subset0 is absent
    from aggregator.consolidate.render import WeasyPrintRenderer

    renderer = WeasyPrintRenderer()
    out = {}
    for label, n_lines, n_apps in (("1 page", args.lines1, 3), ("10 pages", args.lines10, 10)):
        fns = variants(args, renderer, make_context(n_lines, n_apps))
        repeat, warmup = (args.repeat, args.warmup) if label == "1 page" else (args.repeat10, args.warmup10)
        out[label] = {f"{k}-fonttools": v for k, v in measure(fns, warmup, repeat).items()}
    return out


def main_run(args) -> dict:
    _quiet_weasyprint()
    import weasyprint
    from weasyprint.pdf import fonts as wp_fonts

    from aggregator.consolidate.render import WeasyPrintRenderer

    result = {"weasyprint": weasyprint.__version__, "template": template(),
              "harfbuzz_subset_loaded": wp_fonts.harfbuzz_subset is not None, "sizes": {}}
    renderer = WeasyPrintRenderer()
    m0 = _machine_busy()
    for label, n_lines, n_apps in (("1 page", args.lines1, 3), ("10 pages", args.lines10, 10)):
        fns = variants(args, renderer, make_context(n_lines, n_apps))
        repeat, warmup = (args.repeat, args.warmup) if label == "1 page" else (args.repeat10, args.warmup10)
        log(f"{label}: {n_lines} lines, {warmup} warmup + {repeat} interleaved renders of {list(fns)}")
        result["sizes"][label] = {"lines": n_lines, **measure(fns, warmup, repeat)}
    log("the same with the fontTools subsetter, in a child process")
    child = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--phase", "fonttools",
                            *(["--no-v1"] if args.no_v1 else []),
                            "--lines1", str(args.lines1), "--lines10", str(args.lines10),
                            "--warmup", str(args.warmup), "--warmup10", str(args.warmup10),
                            "--repeat", str(args.repeat),
                            "--repeat10", str(args.repeat10)],
                           cwd=ROOT, stdout=subprocess.PIPE, text=True, check=True)
    for label, figures in json.loads(child.stdout.strip().splitlines()[-1]).items():
        result["sizes"][label].update(figures)
    m1 = _machine_busy()
    result["machine_busy_cores_during_single"] = round(
        ((m1[0] - m1[1]) - (m0[0] - m0[1])) / max(1, m1[0] - m0[0]) * (os.cpu_count() or 1), 2)
    result["ru_maxrss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)

    if args.scale_sizes:
        log(f"very large invoices: {args.scale_sizes} lines, {template()} against {V2}")
        result["scale"] = scale_run(args, renderer)
        result["line_limit"] = args.line_limit

    if args.workers:
        contexts = [make_context(args.lines1, 3) for _ in range(args.invoices)]
        result["pool"] = []
        for processes in sorted({1, args.workers}):
            log(f"pool of {processes}: {args.invoices} 1-page invoices")
            result["pool"].append(pool_throughput(processes, contexts))
    return result


def format_report(result: dict, quick: bool) -> str:
    lines = [f"{'invoice':<10}{'variant':<20}{'median ms':>10}{'min ms':>8}{'cpu ms':>8}{'KB':>7}{'pages':>6}"
             f"{'vs plain':>9}{'vs plain-ft':>12}  text", "-" * 95]
    for label, s in result["sizes"].items():
        plain, plain_ft = s["plain"]["median_ms"], s["plain-fonttools"]["median_ms"]
        for variant in ("renderer", "plain", "renderer-fonttools", "plain-fonttools", "renderer-v1", "plain-v1",
                        "renderer-v1-fonttools", "plain-v1-fonttools"):
            if variant not in s:
                continue
            v = s[variant]
            lines.append(f"{label:<10}{variant:<20}{v['median_ms']:>10.1f}{v['min_ms']:>8.1f}{v['cpu_ms']:>8.1f}"
                         f"{v['bytes'] / 1024:>7.1f}{v['pages']:>6}{v['median_ms'] / plain:>9.2f}"
                         f"{v['median_ms'] / plain_ft:>12.2f}  {'ok' if v['text_ok'] else 'MISSING'}")
    one = result["sizes"]["1 page"]
    r, plain, plain_ft = one["renderer"], one["plain"]["median_ms"], one["plain-fonttools"]["median_ms"]
    lines.append("")
    lines.append(f"target, 1 page through the renderer ({result['template']})"
                 + (" (--quick: few renders)" if quick else "") + ":")
    lines.append(f"  time {r['median_ms']:.1f} ms = {r['median_ms'] / plain:.0%} of plain defaults with HarfBuzz "
                 f"subsetting ({plain:.1f} ms), {r['median_ms'] / plain_ft:.0%} of plain defaults with the fontTools "
                 f"fallback ({plain_ft:.1f} ms); target <= {TARGET_RATIO:.0%}: "
                 f"{'MET' if r['median_ms'] <= TARGET_RATIO * plain else 'NOT MET'} vs plain, "
                 f"{'MET' if r['median_ms'] <= TARGET_RATIO * plain_ft else 'NOT MET'} vs plain-fonttools")
    pmin, ftmin = one["plain"]["min_ms"], one["plain-fonttools"]["min_ms"]
    lines.append(f"  by fastest render (less noise): {r['min_ms']:.1f} ms = {r['min_ms'] / pmin:.0%} of plain "
                 f"({pmin:.1f}), {r['min_ms'] / ftmin:.0%} of plain-fonttools ({ftmin:.1f})")
    lines.append(f"  by CPU time: {r['cpu_ms']:.1f} ms = {r['cpu_ms'] / one['plain']['cpu_ms']:.0%} of plain, "
                 f"{r['cpu_ms'] / one['plain-fonttools']['cpu_ms']:.0%} of plain-fonttools")
    lines.append(f"  size {r['bytes'] / 1024:.1f} KB; target <= {TARGET_BYTES // 1024} KB: "
                 f"{'MET' if r['bytes'] <= TARGET_BYTES else 'NOT MET'}")
    if result.get("pool"):
        base = result["pool"][0]["invoices_per_s"]
        lines.append("")
        lines.append("worker pool (1-page invoices, one WeasyPrintRenderer per process):")
        for p in result["pool"]:
            lines.append(f"  {p['processes']} process{'es' if p['processes'] > 1 else '  '}: "
                         f"{p['invoices_per_s']:>6.1f} invoices/s ({p['invoices']} in {p['seconds']} s, "
                         f"x{p['invoices_per_s'] / base:.2f}, workers' CPU {p['workers_cpu_s']} s, "
                         f"machine busy {p['machine_busy_cores']} cores)")
    if result.get("scale"):
        lines.append(format_scale(result["scale"], result["line_limit"]))
    lines.append("")
    lines.append(f"WeasyPrint {result['weasyprint']}, libharfbuzz-subset loaded: {result['harfbuzz_subset_loaded']}; "
                 f"busy cores during the single-process part: {result['machine_busy_cores_during_single']} "
                 f"(1.0 = this bench alone); peak RSS {result['ru_maxrss_mb']} MB.")
    lines.append("renderer = WeasyPrintRenderer.render; plain = weasyprint.HTML(string, base_url).write_pdf() "
                 "defaults on the same document with its stylesheet linked; *-fonttools = the same with "
                 "WeasyPrint's fontTools subsetter forced (child process, as without libharfbuzz-subset0); "
                 "*-v1 = the same on invoice_v1.html.")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--lines1", type=int, default=10, help="bill lines of the 1-page invoice")
    p.add_argument("--lines10", type=int, default=300, help="bill lines of the ~10-page invoice")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--warmup10", type=int, default=1, help="unmeasured renders per variant, 10 pages")
    p.add_argument("--repeat", type=int, default=21, help="measured renders per variant, 1 page")
    p.add_argument("--repeat10", type=int, default=5, help="measured renders per variant, 10 pages")
    p.add_argument("--workers", type=int, default=2, help="pool size compared with 1 process (0: skip)")
    p.add_argument("--invoices", type=int, default=60, help="1-page invoices rendered by each pool")
    p.add_argument("--no-v1", action="store_true", help="skip the invoice_v1.html variants")
    p.add_argument("--scale-sizes", type=lambda text: [int(n) for n in text.split(",") if n],
                   default=[1, 100, 1000, 5000], help="bill lines of the very large invoices ('' to skip)")
    p.add_argument("--scale-repeat", type=int, default=3, help="renders per size of the current template")
    p.add_argument("--line-limit", type=int, default=2000,
                   help="the tenant's invoice_line_limit: past it the detail is summarized, the lines attached")
    p.add_argument("--quick", action="store_true",
                   help="one render each, a 40-line second invoice (seconds), to check the bench works")
    p.add_argument("--json", metavar="PATH", help="write the figures as JSON to PATH")
    p.add_argument("--phase", choices=["fonttools"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick and args.phase is None:
        args.warmup, args.warmup10, args.repeat, args.repeat10, args.invoices = 0, 0, 1, 1, 4
        args.lines10 = min(args.lines10, 40)  # 2 pages: keeps --quick to seconds
        args.scale_sizes, args.scale_repeat, args.line_limit = [1, 100], 1, 50  # 100 lines: summarized
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.phase == "fonttools":
        print(json.dumps(fonttools_baseline(args)))
        return 0
    started = time.monotonic()
    result = main_run(args)
    result.update({"benchmark": "pdf", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   "command": " ".join([sys.executable, *sys.argv]),
                   "machine": {"cores": os.cpu_count(), "platform": platform.platform(),
                               "python": platform.python_version()},
                   "elapsed_s": round(time.monotonic() - started, 1)})
    print()
    print(f"aggregator invoice PDF benchmark — {result['date']} — {os.cpu_count()} cores")
    print(format_report(result, args.quick))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"figures written to {args.json}")
    print(f"elapsed {result['elapsed_s']} s")
    bad = [f"{label}/{variant}" for label, s in result["sizes"].items() for variant, v in s.items()
           if isinstance(v, dict) and not v["text_ok"]]
    bad += [f"{r['lines']} lines/{label}" for r in result.get("scale", []) for label in ("v3", "v2")
            if not r[label]["text_ok"]]
    if bad:
        print("FAILED: text missing from " + ", ".join(bad))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
