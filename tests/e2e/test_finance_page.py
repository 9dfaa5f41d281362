"""Finance's payout review page. Through Flask's test client: signing in with an admin key only,
the session cookie's flags and contents, CSRF on every POST, the security headers, and review
actions done once whatever is submitted again. Then the whole review in a real browser
(Debian's chromium and chromedriver driven by Selenium) against the app served on a port."""
from __future__ import annotations

import hashlib
import re
import shutil
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from aggregator.db import db
from aggregator.finance.models import FinanceSession
from tests.support.finance import csrf_of, sign_in
from tests.support.invoicing import advance
from tests.support.payouts import AFTER_PAYOUT_DAY, _pay

COOKIE = "aggregator_finance"


def admin_key(tenant, mode: str = "test") -> str:
    return tenant.admin[mode].key


def set_cookie(response) -> str:
    return next(h for h in response.headers.getlist("Set-Cookie") if h.startswith(COOKIE + "="))


@pytest.fixture
def visitor(app):
    """A client of its own: its cookies are one finance session."""
    return app.test_client()


@pytest.fixture
def paid_out(market):
    """The payouts of the period 2026-10-25: both providers' awaiting review."""
    _pay(market, market.invoice["total"])
    advance(market, AFTER_PAYOUT_DAY)
    return market


def test_an_admin_key_signs_in_and_the_session_holds_its_id_never_the_secret(app, visitor, tenant):
    signed = sign_in(visitor, admin_key(tenant))
    assert signed.status_code == 302 and signed.location.endswith("/finance/payouts")
    cookie = set_cookie(signed)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/finance" in cookie
    assert "Expires=" in cookie and "Secure" not in cookie  # plain http here
    value = cookie.split(";")[0].split("=", 1)[1]
    with app.test_request_context("/finance/payouts"):
        stored = app.session_interface.get_signing_serializer(app).loads(value)
    assert set(stored) == {"sid", "csrf", "_permanent"}  # the session's token: the rest is server-side
    assert admin_key(tenant) not in str(stored)
    (key,) = tenant.admin["test"].get("/v1/keys", query_string={"role": "admin"}).json["data"]
    with app.app_context():
        (row,) = db.session.scalars(sa.select(FinanceSession).where(FinanceSession.tenant_id == tenant.id)).all()
        assert (row.livemode, row.key_id, row.revoked_at) == (False, key["id"], None)
        assert row.token_hash == hashlib.sha256(stored["sid"].encode()).digest()  # only its hash is kept
        assert row.expires_at - row.created_at == app.config["FINANCE_SESSION_LIFETIME"]
    page = visitor.get("/finance/payouts")
    assert page.status_code == 200 and "No payouts yet" in page.text


def test_the_cookie_is_secure_over_https(visitor, tenant):
    signed = sign_in(visitor, admin_key(tenant), base_url="https://localhost")
    assert "; Secure" in set_cookie(signed)


def test_a_session_ends_after_its_lifetime_whatever_the_cookie_says(app, visitor, tenant, monkeypatch):
    from itsdangerous import TimestampSigner

    sign_in(visitor, admin_key(tenant))
    assert visitor.get("/finance/payouts").status_code == 200
    lifetime = int(app.config["FINANCE_SESSION_LIFETIME"].total_seconds())
    signed_at = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: signed_at(self) - lifetime - 1)
    sign_in(visitor, admin_key(tenant))  # a cookie signed just over a lifetime ago
    monkeypatch.undo()
    expired = visitor.get("/finance/payouts")
    assert expired.status_code == 302 and expired.location.endswith("/finance/login")


def test_unknown_and_provider_keys_are_refused_with_a_clear_message(visitor, tenant):
    unknown = sign_in(visitor, "agg_admin_test_nope")
    assert unknown.status_code == 401 and "unknown or has been revoked" in unknown.text
    provider = tenant.provider()
    refused = sign_in(visitor, provider.key)
    assert refused.status_code == 403 and "This is a provider key" in refused.text
    assert visitor.get("/finance/payouts").status_code == 302  # still not signed in


def test_a_revoked_key_ends_its_session_and_cannot_sign_in_again(visitor, tenant):
    admin = tenant.admin["test"]
    issued = admin.post("/v1/tenant/keys").json
    assert sign_in(visitor, issued["secret"]).status_code == 302
    assert visitor.get("/finance/payouts").status_code == 200
    assert admin.delete(f"/v1/keys/{issued['id']}").status_code == 200
    after = visitor.get("/finance/payouts")
    assert after.status_code == 302 and after.location.endswith("/finance/login")
    assert sign_in(visitor, issued["secret"]).status_code == 401


def test_a_cookie_replayed_after_signing_out_is_refused_and_cancels_nothing(app, paid_out):
    visitor = app.test_client()
    sign_in(visitor, admin_key(paid_out))
    page = visitor.get("/finance/payouts?period=2026-10-25")
    payout_id = re.search(r'action="/finance/payouts/(po_\w+)/cancel"', page.text).group(1)
    form = {"csrf_token": csrf_of(page.text), "period": "2026-10-25"}
    stolen = visitor.get_cookie(COOKIE, path="/finance").value  # a copy of the cookie, kept
    signed_out = visitor.post("/finance/logout", data=form)
    assert signed_out.status_code == 302 and signed_out.location.endswith("/finance/login")

    replay = app.test_client()
    replay.set_cookie(COOKIE, stolen, path="/finance")
    refused = replay.get("/finance/payouts")
    assert refused.status_code == 302 and refused.location.endswith("/finance/login")
    replay.set_cookie(COOKIE, stolen, path="/finance")
    cancel = replay.post(f"/finance/payouts/{payout_id}/cancel", data=form)
    assert cancel.status_code == 302 and cancel.location.endswith("/finance/login")
    assert paid_out.admin["test"].get(f"/v1/payouts/{payout_id}").json["status"] == "pending_review"
    with app.app_context():
        (row,) = db.session.scalars(sa.select(FinanceSession).where(FinanceSession.tenant_id == paid_out.id))
        assert row.revoked_at is not None


def test_revoking_the_key_ends_the_sessions_it_signed_in_even_replayed(app, visitor, tenant):
    admin = tenant.admin["test"]
    issued = admin.post("/v1/tenant/keys").json
    sign_in(visitor, issued["secret"])
    stolen = visitor.get_cookie(COOKIE, path="/finance").value
    assert visitor.get("/finance/payouts").status_code == 200
    assert admin.delete(f"/v1/keys/{issued['id']}").status_code == 200
    replay = app.test_client()
    replay.set_cookie(COOKIE, stolen, path="/finance")
    after = replay.get("/finance/payouts")
    assert after.status_code == 302 and after.location.endswith("/finance/login")


def test_a_session_expires_on_the_apps_clock_whatever_the_cookie_says(app, visitor, tenant, clock):
    from tests.support.clock import START

    sign_in(visitor, admin_key(tenant))
    stolen = visitor.get_cookie(COOKIE, path="/finance").value
    lifetime = app.config["FINANCE_SESSION_LIFETIME"]
    clock.set(START + lifetime - timedelta(seconds=1))
    assert visitor.get("/finance/payouts").status_code == 200
    clock.set(START + lifetime)
    expired = visitor.get("/finance/payouts")
    assert expired.status_code == 302 and expired.location.endswith("/finance/login")
    replay = app.test_client()  # the cookie itself is still well signed and within its timestamp
    replay.set_cookie(COOKIE, stolen, path="/finance")
    assert replay.get("/finance/payouts").status_code == 302


def test_signing_in_again_ends_the_previous_session(app, visitor, tenant):
    sign_in(visitor, admin_key(tenant))
    first = visitor.get_cookie(COOKIE, path="/finance").value
    sign_in(visitor, admin_key(tenant))
    assert visitor.get("/finance/payouts").status_code == 200
    replay = app.test_client()
    replay.set_cookie(COOKIE, first, path="/finance")
    assert replay.get("/finance/payouts").status_code == 302


def test_every_post_needs_the_session_csrf_token(visitor, paid_out):
    sign_in(visitor, admin_key(paid_out))
    page = visitor.get("/finance/payouts")
    payout_id = re.search(r'action="/finance/payouts/(po_\w+)/approve"', page.text).group(1)
    for data in ({}, {"csrf_token": "forged"}, {"csrf_token": csrf_of(page.text)[:-1] + "x"}):
        refused = visitor.post(f"/finance/payouts/{payout_id}/approve", data={"period": "2026-10-25", **data})
        assert refused.status_code == 400 and "CSRF" in refused.text
        assert refused.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert visitor.post("/finance/logout").status_code == 400  # signing out too
    statuses = {p["status"] for p in paid_out.admin["test"].get("/v1/payouts").json["data"]}
    assert statuses == {"pending_review"}
    # signing in: a login form posted from elsewhere (no token in this client's session) is refused
    fresh = visitor.application.test_client()
    assert fresh.post("/finance/login", data={"api_key": admin_key(paid_out)}).status_code == 400


def test_the_page_shows_the_period_and_approving_twice_approves_once(visitor, paid_out):
    sign_in(visitor, admin_key(paid_out))
    page = visitor.get("/finance/payouts")
    assert page.status_code == 200
    for header, value in (("X-Frame-Options", "DENY"), ("Referrer-Policy", "same-origin")):
        assert page.headers[header] == value
    policy = page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "script-src" not in policy and "'unsafe-inline'" not in policy
    assert "<script" not in page.text
    assert "Accounting App" in page.text and "A$80.01" in page.text and "Reconciliation" in page.text
    assert "2026-10-25" in page.text
    token = csrf_of(page.text)
    payout_id = re.search(r'action="/finance/payouts/(po_\w+)/approve"', page.text).group(1)
    form = {"csrf_token": token, "period": "2026-10-25"}
    first = visitor.post(f"/finance/payouts/{payout_id}/approve", data=form, follow_redirects=True)
    assert f"Payout {payout_id} approved." in first.text
    again = visitor.post(f"/finance/payouts/{payout_id}/approve", data=form, follow_redirects=True)
    assert "This payout is approved: only a payout pending review can be approved." in again.text
    events = paid_out.admin["test"].get("/v1/events", query_string={"limit": 100, "type": "payout.approved"}).json
    assert [e["data"]["object"]["id"] for e in events["data"]] == [payout_id]


def test_refusals_are_said_on_the_page_and_values_are_escaped(visitor, paid_out):
    accounting, _ = paid_out.apps
    paid_out.admin["test"].patch(f"/v1/providers/{accounting.id}", {"name": "<script>alert(1)</script> & Co"})
    sign_in(visitor, admin_key(paid_out))
    page = visitor.get("/finance/payouts?period=2026-10-25")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in page.text and "<script>" not in page.text
    form = {"csrf_token": csrf_of(page.text), "period": "2026-10-25"}
    payout_id = re.search(r'action="/finance/payouts/(po_\w+)/approve"', page.text).group(1)

    unknown = visitor.post("/finance/payouts/po_nope/approve", data=form, follow_redirects=True)
    assert unknown.status_code == 200 and "No such payout" in unknown.text
    not_approved = visitor.post(f"/finance/payouts/{payout_id}/mark_paid", data={**form, "reference": "SEPA-1"},
                                follow_redirects=True)
    assert "only an approved payout can be recorded paid" in not_approved.text
    visitor.post(f"/finance/payouts/{payout_id}/approve", data=form)
    blank = visitor.post(f"/finance/payouts/{payout_id}/mark_paid", data={**form, "reference": "  "},
                         follow_redirects=True)
    assert "reference: Length must be between 1 and 255." in blank.text
    assert visitor.post(f"/finance/payouts/{payout_id}/mark_paid",
                        data={**form, "reference": "a\x00b"}).status_code == 400
    canceled = visitor.post(f"/finance/payouts/{payout_id}/cancel", data=form, follow_redirects=True)
    assert f"Payout {payout_id} canceled" in canceled.text
    assert paid_out.admin["test"].get(f"/v1/payouts/{payout_id}").json["status"] == "canceled"
    nothing = visitor.post("/finance/payouts/approve", data=form, follow_redirects=True)
    assert "Approved 1 payout of the period 2026-10-25." in nothing.text
    again = visitor.post("/finance/payouts/approve", data=form, follow_redirects=True)
    assert "No payout of the period 2026-10-25 awaits review: nothing changed." in again.text


def test_downloads_need_the_session(visitor, paid_out):
    assert visitor.get("/finance/report.csv?period=2026-10-25").status_code == 302
    sign_in(visitor, admin_key(paid_out))
    csv = visitor.get("/finance/report.csv?period=2026-10-25")
    assert csv.status_code == 200 and csv.mimetype == "text/csv" and "Accounting App" in csv.text
    assert 'filename="payouts-2026-10-25.csv"' in csv.headers["Content-Disposition"]
    assert visitor.get("/finance/payouts?period=soon").status_code == 400


def test_the_api_sets_no_cookie(client, tenant):
    response = tenant.admin["test"].get("/v1/tenant")
    assert response.status_code == 200 and "Set-Cookie" not in response.headers


# --- in a real browser ----------------------------------------------------------------------------

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--no-first-run", "--window-size=1400,1000")


@pytest.fixture
def served(app):
    """The app on a real localhost port (a thread), against the test database."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.port}"
    server.shutdown()
    thread.join(10)


@pytest.fixture
def chrome(tmp_path):
    """Debian's chromium through its chromedriver, headless, with a fresh profile. Selenium
    Manager never runs (the driver's path is given), so nothing is downloaded."""
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip("chromium and chromedriver are not installed (as root: apt-get install chromium "
                    "chromium-driver; bin/test installs them when run as root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def _submit(driver, button) -> None:
    """Click a form's button and wait for the page it leads to (after the redirect) to have
    loaded. While the old page is torn down chromedriver may answer any query with an error
    ("unhandled inspector error"), so errors only mean "not there yet"."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    before = driver.find_element(By.TAG_NAME, "html").id

    def arrived(d) -> bool:
        return (d.find_element(By.TAG_NAME, "html").id != before
                and d.execute_script("return document.readyState") == "complete")

    button.click()
    WebDriverWait(driver, 30, ignored_exceptions=(WebDriverException,)).until(arrived)


def _flash(driver) -> str:
    from selenium.webdriver.common.by import By

    return " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, "p.flash"))


def _status(tenant, payout_id: str) -> str:
    return tenant.admin["test"].get(f"/v1/payouts/{payout_id}").json["status"]


@pytest.mark.slow
def test_finance_reviews_a_period_in_a_real_browser(chrome, served, paid_out):
    from selenium.webdriver.common.by import By

    admin = paid_out.admin["test"]
    chrome.get(f"{served}/finance/payouts")
    assert chrome.current_url.endswith("/finance/login")  # not signed in yet
    chrome.find_element(By.ID, "api_key").send_keys(admin_key(paid_out))
    _submit(chrome, chrome.find_element(By.ID, "sign_in"))
    assert chrome.current_url.endswith("/finance/payouts")
    table = chrome.find_element(By.ID, "payouts").text
    assert "Accounting App" in table and "SMS Gateway" in table and "A$80.01" in table
    assert "Balanced" in chrome.find_element(By.ID, "reconciliation").text

    # the page open in a second tab keeps a form that will be stale
    stale_tab = chrome.current_window_handle
    chrome.switch_to.new_window("tab")
    chrome.get(f"{served}/finance/payouts?period=2026-10-25")
    first = chrome.find_element(By.CSS_SELECTOR, "form.approve")
    payout_id = first.find_element(By.XPATH, "..").get_attribute("id")
    _submit(chrome, first.find_element(By.TAG_NAME, "button"))
    assert f"Payout {payout_id} approved." in _flash(chrome)
    chrome.switch_to.window(stale_tab)  # the same form, submitted again from the stale page
    _submit(chrome, chrome.find_element(By.CSS_SELECTOR, f"[id='{payout_id}'] form.approve button"))
    assert "This payout is approved: only a payout pending review can be approved." in _flash(chrome)
    approvals = admin.get("/v1/events", query_string={"limit": 100, "type": "payout.approved"}).json["data"]
    assert [e["data"]["object"]["id"] for e in approvals] == [payout_id]
    assert _status(paid_out, payout_id) == "approved"

    _submit(chrome, chrome.find_element(By.ID, "approve_all"))
    assert "Approved 1 payout of the period 2026-10-25." in _flash(chrome)
    assert {p["status"] for p in admin.get("/v1/payouts").json["data"]} == {"approved"}

    # the report, fetched with the browser's session cookie
    cookie = chrome.get_cookie(COOKIE)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and not cookie["secure"]
    session = requests.Session()
    session.cookies.set(COOKIE, cookie["value"], path="/finance")
    pdf = session.get(chrome.find_element(By.ID, "report_pdf").get_attribute("href"), timeout=60)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert requests.get(f"{served}/finance/report.pdf?period=2026-10-25", allow_redirects=False,
                        timeout=10).status_code == 302  # not without the session

    # a forged form (the session's cookie, a wrong token) is refused and changes nothing
    other = next(p["id"] for p in admin.get("/v1/payouts").json["data"] if p["id"] != payout_id)
    forged = session.post(f"{served}/finance/payouts/{other}/cancel",
                          data={"csrf_token": "forged", "period": "2026-10-25"}, timeout=10)
    assert forged.status_code == 400 and _status(paid_out, other) == "approved"

    # the bank transfer recorded paid
    chrome.find_element(By.CSS_SELECTOR, f"[id='{payout_id}'] form.mark-paid input[name=reference]") \
        .send_keys("SEPA-42")
    _submit(chrome, chrome.find_element(By.CSS_SELECTOR, f"[id='{payout_id}'] form.mark-paid button"))
    recorded, paid = _flash(chrome), _status(paid_out, payout_id)
    assert f"Payout {payout_id} recorded paid by bank transfer SEPA-42." in recorded and paid == "paid"

    _submit(chrome, chrome.find_element(By.ID, "logout"))
    assert chrome.current_url.endswith("/finance/login") and "Signed out." in _flash(chrome)
    chrome.get(f"{served}/finance/payouts")
    assert chrome.current_url.endswith("/finance/login")


@pytest.mark.slow
def test_the_page_fits_1200_pixels_with_its_review_column_and_the_reconciliations_converted_columns(
        chrome, served, paid_out):
    """The widest review cell (an approved bank transfer: its reference form and cancel) stays
    inside a 1200 px window, nothing scrolls sideways; the reconciliation shows money in and out."""
    from selenium.webdriver.common.by import By

    admin = paid_out.admin["test"]
    assert admin.post("/v1/payouts/approve", {"period": "2026-10-25"}).status_code == 200
    chrome.set_window_size(1200, 1000)
    chrome.get(f"{served}/finance/login")
    chrome.find_element(By.ID, "api_key").send_keys(admin_key(paid_out))
    _submit(chrome, chrome.find_element(By.ID, "sign_in"))
    assert chrome.find_elements(By.CSS_SELECTOR, "form.mark-paid")
    width = chrome.execute_script("return window.innerWidth")
    assert width <= 1200
    assert chrome.execute_script("return document.documentElement.scrollWidth") <= width
    for cell in chrome.find_elements(By.CSS_SELECTOR, "td.review"):
        assert cell.rect["x"] + cell.rect["width"] <= width, cell.rect
    reconciliation = chrome.find_element(By.ID, "reconciliation").text
    for label in ("Converted in from other currencies", "Converted out to other currencies", "= Money in",
                  "= Money out", "Balanced"):
        assert label in reconciliation, label
