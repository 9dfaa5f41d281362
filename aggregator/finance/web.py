"""Finance's payout review page: server-rendered HTML (no JavaScript) over the payouts' review
use cases and the payout report. Every action is a POST form that carries the session's CSRF
token, then redirects back to the page with a flash message (Post/Redirect/Get): submitting a
stale form again is harmless, the use case refuses what is already done and the page says so."""
from __future__ import annotations

from datetime import date
from typing import Callable, Iterable

from flask import Blueprint, Response, abort, flash, g, redirect, render_template, request, url_for
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from .. import money
from ..accounts import service as accounts
from ..adapters import current as adapters
from ..config import PROJECT_ROOT
from ..db import db
from ..errors import DomainError, describe
from ..payouts import report_service
from ..payouts import service as payouts
from ..payouts.models import Payout
from ..payouts.report_service import ARITHMETIC_COLUMNS, arithmetic_cells
from ..payouts.schemas import MarkPaidSchema
from ..web import clock_now, takes_form
from . import session

blp = Blueprint("finance", __name__, url_prefix=session.PATH, template_folder=str(PROJECT_ROOT / "templates"),
                static_folder=str(PROJECT_ROOT / "templates" / "finance" / "static"), static_url_path="/static")

#: No script at all, styles from our own file, nothing framed, forms posted only to us.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
_OPEN = {"finance.login", "finance.static"}

#: The reconciliation's lines (report_service.Reconciliation's figures), as the PDF report shows
#: them: money in, where it went (money out), then what the payouts table says and what is due.
RECONCILIATION_ROWS = (
    ("collected", "Collected", "in"), ("converted_in", "+ Converted in from other currencies", "in"),
    ("money_in", "= Money in", "sum"),
    ("tax", "Tax", "out"), ("provider_payouts", "+ Provider payouts (net)", "out"),
    ("platform_revenue", "+ Platform revenue (fees)", "out"), ("credits_applied", "+ Customer credits applied", "out"),
    ("credits_carried", "+ Customer credits carried forward", "out"), ("fx_difference", "+ FX difference", "out"),
    ("converted_out", "+ Converted out to other currencies", "out"),
    ("money_out", "= Money out", "sum"),
    ("payouts_net", "Payouts' net (payouts table)", "check"),
    ("uncollected", "Uncollected (open invoices of the period)", "due"), ("uncollectible", "Uncollectible", "due"),
)


@blp.before_request
def _guard():
    if request.method == "POST":
        if not session.csrf_matches(request.form.get("csrf_token")):
            abort(400, "This form has expired or did not come from this page (CSRF check). Reload the page and "
                       "try again.")
        if any("\x00" in value for value in request.form.values()):
            abort(400, "NUL characters are not allowed.")
    if request.endpoint in _OPEN:
        return None
    g.principal = session.signed_in()
    if g.principal is None:
        return redirect(url_for(".login"))
    return None


@blp.after_request
def _secure(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


@blp.errorhandler(HTTPException)
def _error_page(error: HTTPException):
    return render_template("finance/error.html", title=error.name, message=error.description), error.code


@blp.errorhandler(DomainError)
def _refused_page(error: DomainError):
    status, body = describe(error)
    return render_template("finance/error.html", title=body["type"].replace("_", " ").capitalize(),
                           message=error.message), status


@blp.context_processor
def _forms():
    return {"csrf_token": session.csrf_token}


# --- signing in and out -------------------------------------------------------------------------

@blp.route("/login", methods=["GET", "POST"])
@takes_form
def login():
    if request.method == "GET":
        return render_template("finance/login.html", refused=None)
    try:
        session.sign_in(request.form.get("api_key", ""))
    except session.SignInRefused as refused:
        return render_template("finance/login.html", refused=str(refused)), refused.http_status, refused.headers
    return redirect(url_for(".payouts_page"))


@blp.post("/logout")
@takes_form
def logout():
    session.sign_out()
    flash("Signed out.", "success")
    return redirect(url_for(".login"))


# --- the page ---------------------------------------------------------------------------------

@blp.get("/")
def index():
    return redirect(url_for(".payouts_page"))


@blp.get("/payouts")
def payouts_page():
    principal = g.principal
    period = _period(request.args.get("period"))
    tenant = accounts.get_tenant(principal)
    report = report_service.payout_report(principal, period) if period else None
    show = lambda minor, currency: money.display(minor, currency, tenant.locale)  # noqa: E731
    return render_template("finance/payouts.html", tenant=tenant, period=period, report=report,
                           totals=_per_currency(report.totals) if report else [],
                           payouts={p.id: p for p in _payouts_of(period)} if period else {},
                           actions=_actions, money=show, columns=ARITHMETIC_COLUMNS,
                           arithmetic=lambda figures, currency: arithmetic_cells(
                               figures, lambda minor: show(minor, currency)),
                           reconciliation_rows=RECONCILIATION_ROWS)


@blp.get("/report.pdf")
def report_pdf():
    report = _report()
    return _download(report_service.report_pdf(report, adapters().renderer), "application/pdf",
                     f"payouts-{report.period_start}.pdf")


@blp.get("/report.csv")
def report_csv():
    report = _report()
    return _download(report_service.report_csv(report), "text/csv; charset=utf-8",
                     f"payouts-{report.period_start}.csv")


# --- actions: POST, then back to the page -------------------------------------------------------

@blp.post("/payouts/<payout_id>/approve")
@takes_form
def approve(payout_id):
    return _act(lambda now: f"Payout {payouts.approve_payout(g.principal, payout_id, now).id} approved.")


@blp.post("/payouts/approve")
@takes_form
def approve_all():
    period = _period(request.form.get("period"), latest=False)
    if period is None:
        abort(400, "Which period? The form sent no period.")

    def approve_period(now) -> str:
        approved = payouts.approve_period(g.principal, period, now)
        return (f"Approved {len(approved)} payout{'s' if len(approved) != 1 else ''} of the period {period}."
                if approved else f"No payout of the period {period} awaits review: nothing changed.")

    return _act(approve_period)


@blp.post("/payouts/<payout_id>/mark_paid")
@takes_form
def record_bank_transfer(payout_id):
    def record(now) -> str:
        reference = MarkPaidSchema().load({"reference": request.form.get("reference", "").strip()})["reference"]
        payout = payouts.record_bank_transfer(g.principal, payout_id, reference, now)
        return f"Payout {payout.id} recorded paid by bank transfer {reference}."

    return _act(record)


@blp.post("/payouts/<payout_id>/cancel")
@takes_form
def cancel(payout_id):
    return _act(lambda now: f"Payout {payouts.cancel_payout(g.principal, payout_id, now).id} canceled: its "
                            "amount goes into the provider's next payout.")


def _act(action: Callable[..., str]):
    """Run one review action as of the tenant's clock, flash what it did or why it was refused,
    and go back to the page of the period the form was on."""
    try:
        flash(action(clock_now(g.principal)), "success")
    except DomainError as refused:
        db.session.rollback()
        flash(refused.message, f"error {refused.code}")  # the code as a class: for scripts and tests
    except ValidationError as invalid:
        flash("; ".join(f"{field}: {' '.join(problems)}" for field, problems in invalid.messages.items()), "error")
    period = _period(request.form.get("period"), latest=False)
    return redirect(url_for(".payouts_page", period=period.isoformat() if period else None))


# --- reading --------------------------------------------------------------------------------------

def _period(text: str | None, *, latest: bool = True) -> date | None:
    """The period named (YYYY-MM-DD), else (with `latest`) the latest one with payouts, if any."""
    if text:
        try:
            return date.fromisoformat(text)
        except ValueError:
            abort(400, f"Not a period: {text[:40]!r}; use its start date, YYYY-MM-DD.")
    if not latest:
        return None
    newest = payouts.list_payouts(g.principal, limit=1).data
    return newest[0].run.period_start if newest else None


def _payouts_of(period: date) -> Iterable[Payout]:
    """Every payout of the period (for its status and method: which buttons it gets)."""
    after = None
    while True:
        page = payouts.list_payouts(g.principal, limit=100, starting_after=after, period=period)
        yield from page.data
        if not page.has_more:
            return
        after = page.data[-1].id


def _actions(payout: Payout | None) -> tuple[str, ...]:
    """The review actions a payout offers, by its status (the use cases guard them anyway)."""
    if payout is None:
        return ()
    if payout.status == "pending_review":
        return ("approve", "cancel")
    if payout.status == "approved" and payout.method == "bank_transfer":
        return ("mark_paid", "cancel")
    return ()


def _per_currency(totals) -> list:
    """The report's totals, one per currency, whether given as a list or by currency."""
    return list(totals.values()) if hasattr(totals, "values") else list(totals or ())


def _report():
    period = _period(request.args.get("period"))
    if period is None:
        abort(404, "There are no payouts yet, so no report.")
    return report_service.payout_report(g.principal, period)


def _download(body: bytes | str, mimetype: str, filename: str) -> Response:
    return Response(body, mimetype=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
