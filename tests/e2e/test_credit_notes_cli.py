"""`aggregator credit-notes …`: issue, list, show and save a credit note's PDF from the command
line, as the API does; a retry with the same key is the same note; errors as one line."""
from __future__ import annotations

from pypdf import PdfReader

from tests.support.callers import Caller
from tests.support.cli import as_json, commands_of
from tests.support.invoicing import AFTER_END, send


def _open_invoice(cli_tenant) -> dict:
    """An open invoice of 80.00 AUD, from a provider's bill and the test clock past the period."""
    admin = cli_tenant["admin"]
    provider = admin.post("/v1/providers", {"name": "App", "revenue_share_rate": "0.30"}).json
    assert admin.post("/v1/customers", {"external_id": "cust-1"}).status_code == 201
    send(Caller(admin.client, provider["api_key"]), "b1", amount="80.00", description="Pro plan")
    assert admin.post("/v1/test_clock/advance", {"to": AFTER_END}).status_code == 200
    (invoice,) = admin.get("/v1/invoices").json["data"]
    return invoice


def test_every_credit_notes_command_has_help(app, cli):
    commands = commands_of(app, "credit-notes")
    assert set(commands) == {"create", "list", "show", "pdf"}
    for name, command in commands.items():
        assert command.help and "Usage:" in cli("credit-notes", name, "--help").output


def test_a_credit_note_is_issued_listed_shown_and_saved(cli, cli_tenant, tmp_path):
    invoice = _open_invoice(cli_tenant)
    scope = cli_tenant["scope"]
    bill = invoice["lines"][0]["bill"]
    note = as_json(cli("credit-notes", "create", invoice["id"], *scope, "--line", f"{bill}=20.00",
                       "--reason", "order_change", "--memo", "Seats removed", "--idempotency-key", "k1", "--json"))
    assert (note["number"], note["total"], note["settlement"]) == ("INV-CN-2026-000001", "20.00", "reduce_due")
    again = as_json(cli("credit-notes", "create", invoice["id"], *scope, "--line", f"{bill}=20.00",
                        "--reason", "order_change", "--idempotency-key", "k1", "--json"))
    assert again["id"] == note["id"]
    listed = as_json(cli("credit-notes", "list", *scope, "--invoice", invoice["id"], "--json"))
    assert [n["id"] for n in listed["data"]] == [note["id"]]
    assert note["number"] in cli("credit-notes", "list", *scope).stdout
    shown = cli("credit-notes", "show", note["id"], *scope).stdout
    assert note["number"] in shown and "reduce_due" in shown
    out = tmp_path / "note.pdf"
    assert "Wrote" in cli("credit-notes", "pdf", note["id"], *scope, "-o", str(out)).stdout
    text = "\n".join(page.extract_text() for page in PdfReader(out).pages)
    assert "Credit note" in text and note["number"] in text and "Seats removed" in text


def test_what_cannot_be_credited_is_one_line_with_exit_status_1(cli, cli_tenant):
    invoice = _open_invoice(cli_tenant)
    scope = cli_tenant["scope"]
    refused = cli("credit-notes", "create", invoice["id"], *scope, "--amount", "80.01", "--reason", "other",
                  exit_code=1)
    assert "left to credit" in refused.output and len(refused.output.strip().splitlines()) == 1
    cli("credit-notes", "show", "cn_nope", *scope, exit_code=1)
    cli("credit-notes", "create", invoice["id"], *scope, "--amount", "1.00", exit_code=2)  # --reason is required
