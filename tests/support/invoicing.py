"""A provider's bills sent over the API, the tenant's test clock moved past their period's end,
and the text of an invoice's PDF."""
from __future__ import annotations

import io

from pypdf import PdfReader


def bill_body(**overrides) -> dict:
    body = {"customer": "cust-1", "amount": "19.99", "currency": "AUD", "revenue_share": True,
            "description": "Pro plan, October"}
    body.update(overrides)
    return body


# Sydney, anchor 25: the period 2026-10-25 runs 2026-10-24T13:00Z .. 2026-11-24T13:00Z.
AFTER_END = "2026-11-25T00:00:00+00:00"


def send(provider, key, **overrides):
    response = provider.post("/v1/bills", bill_body(**overrides), headers={"Idempotency-Key": key})
    assert response.status_code == 201, response.json
    return response.json


def advance(tenant, to=AFTER_END):
    response = tenant.admin["test"].post("/v1/test_clock/advance", {"to": to})
    assert response.status_code == 200, response.json
    return response.json


def pdf_text(tenant, invoice) -> str:
    response = tenant.admin["test"].get(f"/v1/invoices/{invoice['id']}/pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(response.data)).pages)
