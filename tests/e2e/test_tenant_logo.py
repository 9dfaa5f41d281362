"""A tenant's logo is checked to be a real image when it is set; a stored one that cannot be read
is left out of the PDFs (with a warning) instead of failing every invoice."""
from __future__ import annotations

import base64
import io
import logging

import pytest
from PIL import Image

from tests.support.invoicing import advance, send

SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="20" height="10"><rect width="20" height="10"/></svg>'


def data_uri(media_type: str, data: bytes) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def image(fmt: str, size=(40, 20)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("media_type, data", [
    ("image/png", image("PNG")), ("image/jpeg", image("JPEG")), ("image/gif", image("GIF")),
    ("image/webp", image("WEBP")), ("image/svg+xml", SVG),
], ids=lambda v: v if isinstance(v, str) else "")
def test_a_real_image_is_accepted_as_logo(tenant, media_type, data):
    logo = data_uri(media_type, data)
    response = tenant.admin["test"].patch("/v1/tenant", {"logo": logo})
    assert response.status_code == 200, response.json
    assert response.json["logo"] == logo
    assert tenant.admin["test"].patch("/v1/tenant", {"logo": None}).json["logo"] is None


@pytest.mark.parametrize("logo, words", [
    ("data:image/png;base64,0", "not valid base64"),
    (data_uri("image/png", b"not a png at all"), "not a image/png image"),
    (data_uri("image/png", image("PNG")[:40]), "image/png"),  # truncated
    (data_uri("image/jpeg", image("PNG")), "not a image/jpeg image"),  # not what it claims
    (data_uri("image/png", image("PNG", (5000, 2))), "5000×2 pixels"),
    (data_uri("image/bmp", image("BMP")), "PNG, JPEG, GIF, WebP or SVG"),
    ("https://example.com/logo.png", "data: URI"),
    (data_uri("image/svg+xml", b"<svg"), "not well-formed SVG"),
    (data_uri("image/svg+xml", b"<html/>"), "root element is not <svg>"),
    (data_uri("image/svg+xml", b'<!DOCTYPE svg [<!ENTITY a "aaaa">]><svg xmlns="http://www.w3.org/2000/svg">&a;</svg>'),
     "DOCTYPE"),
    (data_uri("image/svg+xml", '<!DOCTYPE svg [<!ENTITY a "aaaa">]><svg xmlns="http://www.w3.org/2000/svg">&a;</svg>'
              .encode("utf-16")), "DOCTYPE"),  # hidden from a look at the bytes; the parser refuses it
    ("data:image/png;base64," + "A" * 300_000, "at most 300,000 characters"),
])
def test_a_logo_that_is_not_a_real_image_is_refused_naming_logo(tenant, logo, words):
    response = tenant.admin["test"].patch("/v1/tenant", {"logo": logo})
    assert response.status_code == 422, response.json
    error = response.json["error"]
    assert list(error["fields"]) == ["logo"] and words in error["fields"]["logo"][0], error
    assert tenant.admin["test"].get("/v1/tenant").json["logo"] is None


def test_a_stored_unreadable_logo_is_left_out_of_the_pdf_with_a_warning(app, tenant, caplog):
    from aggregator.accounts.models import TenantSettings
    from aggregator.db import db

    with app.app_context():  # as stored before logos were checked
        db.session.get(TenantSettings, (tenant.id, False)).logo = "data:image/png;base64,0"
        db.session.commit()
    tenant.customer("cust-1")
    send(tenant.provider(), "k1")
    with caplog.at_level(logging.WARNING, logger="aggregator.consolidate.pdf_service"):
        ran = advance(tenant)["ran"]
    assert ran["pdfs"] == {"rendered": 1, "failed": 0}
    assert any("logo is left out" in r.getMessage() and tenant.id in r.getMessage() for r in caplog.records)
