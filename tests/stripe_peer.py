"""A small Stripe peer of the tests' own: it checks every request (form-encoded body, Bearer key,
Idempotency-Key on every POST), keeps PaymentIntents, Refunds and Connect Transfers, honours
idempotency keys as Stripe does (the same key and parameters answer the first result; the same key
with other parameters is a 400 idempotency_error), and fails on command, to prove what
localstripe cannot: an unknown outcome (a 500 or a dropped connection after the PaymentIntent was
made, a 429 before, a slow answer) is resolved by lookup and never charged twice."""
from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Seen:
    method: str
    path: str
    form: dict
    idempotency_key: str | None
    authorization: str | None


@dataclass
class Peer:
    """`fail`: actions for the next POSTs (PaymentIntents, Refunds or Transfers), in order: "500"
    (answer 500 before doing anything), "500_after" (make the object, then answer 500),
    "drop_after" (make it, then close the connection unanswered), "429", "slow_after" (make it,
    answer after `slow_seconds`). Refunds are made with `refund_status` (Stripe may answer `pending`), and
    never for more than is left of their PaymentIntent. Transfers go only to the connected
    `accounts` (another acct_… is Stripe's 400 resource_missing "No such destination"), and, without
    a source_transaction, only within `balance` (per lower-case currency; None: unlimited)."""

    intents: dict = field(default_factory=dict)
    refunds: dict = field(default_factory=dict)
    transfers: dict = field(default_factory=dict)
    accounts: set = field(default_factory=lambda: {"acct_provider_a", "acct_provider_b"})
    balance: dict | None = None
    page_size: int = 100  # the most a list answers, whatever its limit (Stripe: 100)
    refund_status: str = "succeeded"
    intent_status: str = "succeeded"  # what a new PaymentIntent is (e.g. "processing": a bank debit)
    by_key: dict = field(default_factory=dict)
    key_requests: dict = field(default_factory=dict)  # idempotency key -> (path, form) first sent with it
    seen: list = field(default_factory=list)
    fail: deque = field(default_factory=deque)
    slow_seconds: float = 2.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    problems: list = field(default_factory=list)

    def creates(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "POST" and s.path == "/v1/payment_intents"]

    def refund_creates(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "POST" and s.path == "/v1/refunds"]

    def transfer_creates(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "POST" and s.path == "/v1/transfers"]


def _flatten(form: dict[str, list[str]]) -> dict:
    """Stripe's form encoding (metadata[k]=v) back to a dict."""
    out: dict = {}
    for key, values in form.items():
        if "[" in key:
            outer, inner = key.split("[", 1)
            out.setdefault(outer, {})[inner.rstrip("]")] = values[0]
        else:
            out[key] = values[0]
    return out


ALLOWED_CREATE = {"amount", "currency", "customer", "payment_method", "off_session", "confirm", "metadata"}
ALLOWED_REFUND = {"payment_intent", "amount", "reason", "metadata"}
ALLOWED_TRANSFER = {"amount", "currency", "destination", "transfer_group", "source_transaction", "metadata",
                    "description"}
ALLOWED = {"/v1/payment_intents": ALLOWED_CREATE, "/v1/refunds": ALLOWED_REFUND, "/v1/transfers": ALLOWED_TRANSFER}
REFUND_REASONS = {"duplicate", "fraudulent", "requested_by_customer"}


def _transfer_problem(form: dict) -> str | None:
    """What is wrong with a transfer's parameters (our code's defect, not a refusal Stripe may make)."""
    if not re.fullmatch(r"[1-9][0-9]*", form.get("amount", "")):
        return f"transfer amount {form.get('amount')!r} is not a positive integer"
    if not re.fullmatch(r"[a-z]{3}", form.get("currency", "")):
        return f"transfer currency {form.get('currency')!r} is not three lower-case letters"
    if not form.get("destination", "").startswith("acct_"):
        return f"transfer destination {form.get('destination')!r} is not an acct_ id"
    if not form.get("source_transaction", "ch_").startswith("ch_"):
        return f"transfer source_transaction {form['source_transaction']!r} is not a ch_ id"
    return None


def _handler(peer: Peer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall

        def log_message(self, *args):
            pass

        def _answer(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Request-Id", "req_" + secrets.token_hex(6))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str, type_: str = "api_error") -> None:
            self._answer(status, {"error": {"type": type_, "message": message}})

        def do_GET(self):
            url = urlsplit(self.path)
            query = _flatten(parse_qs(url.query))
            with peer.lock:
                peer.seen.append(Seen("GET", url.path, query, None, self.headers.get("Authorization")))
                if url.path == "/v1/payment_intents":
                    found = [pi for pi in reversed(peer.intents.values())
                             if "customer" not in query or pi["customer"] == query["customer"]]
                    return self._answer(200, {"object": "list", "data": found[:int(query.get("limit", 10))],
                                              "has_more": False, "url": "/v1/payment_intents"})
                if url.path == "/v1/refunds":
                    found = [r for r in reversed(peer.refunds.values())
                             if "payment_intent" not in query or r["payment_intent"] == query["payment_intent"]]
                    return self._answer(200, {"object": "list", "data": found[:int(query.get("limit", 10))],
                                              "has_more": False, "url": "/v1/refunds"})
                if url.path == "/v1/transfers":
                    return self._answer(200, self._transfer_page(query))
                if url.path.startswith("/v1/transfers/"):
                    transfer_id = url.path.rsplit("/", 1)[1]
                    transfer = peer.transfers.get(transfer_id)
                    return self._answer(200, transfer) if transfer else self._answer(404, _missing(
                        f"No such transfer: '{transfer_id}'", "id"))
                if url.path.startswith("/v1/refunds/"):
                    refund = peer.refunds.get(url.path.rsplit("/", 1)[1])
                    return self._answer(200, refund) if refund else self._error(404, "No such refund",
                                                                               "invalid_request_error")
                if url.path.startswith("/v1/payment_intents/"):
                    intent = peer.intents.get(url.path.rsplit("/", 1)[1])
                    return self._answer(200, intent) if intent else self._error(404, "No such payment_intent",
                                                                               "invalid_request_error")
            self._error(404, "Unknown path", "invalid_request_error")

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            form = _flatten(parse_qs(self.rfile.read(length).decode()))
            key = self.headers.get("Idempotency-Key")
            path = urlsplit(self.path).path
            with peer.lock:
                peer.seen.append(Seen("POST", path, form, key, self.headers.get("Authorization")))
                if not key:
                    peer.problems.append(f"POST {path} without an Idempotency-Key")
                unknown = set(form) - ALLOWED.get(path, set())
                if path in ALLOWED and unknown:
                    peer.problems.append(f"unexpected parameters {sorted(unknown)}")
                    return self._error(400, f"Unexpected {', '.join(sorted(unknown))}", "invalid_request_error")
                if path == "/v1/refunds" and form.get("reason") not in (None, *REFUND_REASONS):
                    peer.problems.append(f"invalid reason {form['reason']!r}")
                    return self._error(400, "Invalid reason", "invalid_request_error")
                problem = _transfer_problem(form) if path == "/v1/transfers" else None
                if problem:
                    peer.problems.append(problem)
                    return self._error(400, problem, "invalid_request_error")
                action = peer.fail.popleft() if peer.fail else None
                if action == "500":
                    return self._error(500, "Something went wrong")
                if action == "429":
                    return self._error(429, "Too many requests", "invalid_request_error")
                if key in peer.by_key:
                    if peer.key_requests[key] != (path, form):
                        return self._answer(400, {"error": {
                            "type": "idempotency_error",
                            "message": "Keys for idempotent requests can only be used with the same parameters "
                                       f"they were first used with. Try using a key other than '{key}' if you "
                                       "meant to execute a different request."}})
                    answer = peer.by_key[key]
                elif path in ("/v1/refunds", "/v1/transfers"):
                    answer = self._refund(form) if path == "/v1/refunds" else self._transfer(form)
                    if "error" in answer:
                        return self._answer(400, answer)
                    peer.by_key[key], peer.key_requests[key] = answer, (path, form)
                else:
                    answer = {"id": "pi_" + secrets.token_hex(8), "object": "payment_intent",
                              "amount": int(form["amount"]), "currency": form["currency"],
                              "customer": form["customer"], "payment_method": form["payment_method"],
                              "metadata": form.get("metadata", {}), "status": peer.intent_status,
                              "latest_charge": "ch_" + secrets.token_hex(8), "created": int(time.time())}
                    peer.intents[answer["id"]] = answer
                    peer.by_key[key], peer.key_requests[key] = answer, (path, form)
            if action == "500_after":
                return self._error(500, "Something went wrong")
            if action == "drop_after":
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if action == "slow_after":
                time.sleep(peer.slow_seconds)
            self._answer(200, answer)

        def _refund(self, form: dict) -> dict:
            """A Refund of a PaymentIntent the peer holds, within what is left of it (holding the lock)."""
            intent = peer.intents.get(form.get("payment_intent"))
            if intent is None:
                return {"error": {"type": "invalid_request_error", "code": "resource_missing",
                                  "message": "No such payment_intent"}}
            refunded = sum(r["amount"] for r in peer.refunds.values()
                           if r["payment_intent"] == intent["id"] and r["status"] != "failed")
            amount = int(form.get("amount") or intent["amount"] - refunded)
            if amount <= 0 or refunded + amount > intent["amount"]:
                peer.problems.append(f"refund of {amount} exceeds what is left of {intent['id']}")
                return {"error": {"type": "invalid_request_error", "code": "charge_already_refunded",
                                  "message": "Refund amount is greater than unrefunded amount on charge"}}
            refund = {"id": "re_" + secrets.token_hex(8), "object": "refund", "amount": amount,
                      "currency": intent["currency"], "payment_intent": intent["id"],
                      "charge": intent["latest_charge"], "reason": form.get("reason"),
                      "metadata": form.get("metadata", {}), "status": peer.refund_status,
                      "created": int(time.time())}
            peer.refunds[refund["id"]] = refund
            return refund

        def _transfer(self, form: dict) -> dict:
            """A Transfer to a connected account, as Stripe refuses or makes it (holding the lock)."""
            amount, currency, source = int(form["amount"]), form["currency"], form.get("source_transaction")
            if form["destination"] not in peer.accounts:
                return _missing(f"No such destination: '{form['destination']}'", "destination")
            if source and source not in {pi["latest_charge"] for pi in peer.intents.values()}:
                return _missing(f"No such charge: '{source}'", "source_transaction")
            if not source and peer.balance is not None:
                if peer.balance.get(currency, 0) < amount:
                    return {"error": {"type": "invalid_request_error", "code": "balance_insufficient",
                                      "message": "You have insufficient available funds in your Stripe account."}}
                peer.balance[currency] -= amount
            transfer = {"id": "tr_" + secrets.token_hex(8), "object": "transfer", "amount": amount,
                        "amount_reversed": 0, "currency": currency, "destination": form["destination"],
                        "destination_payment": "py_" + secrets.token_hex(8),
                        "balance_transaction": "txn_" + secrets.token_hex(8),
                        "transfer_group": form.get("transfer_group"), "source_transaction": source,
                        "description": form.get("description"), "metadata": form.get("metadata", {}),
                        "reversed": False, "livemode": False, "created": int(time.time())}
            peer.transfers[transfer["id"]] = transfer
            return transfer

        def _transfer_page(self, query: dict) -> dict:
            """A page of transfers, newest first: transfer_group, destination, limit, starting_after."""
            unknown = set(query) - {"transfer_group", "destination", "limit", "starting_after"}
            if unknown:
                peer.problems.append(f"unexpected transfer list parameters {sorted(unknown)}")
            found = [t for t in reversed(peer.transfers.values())
                     if all(t[k] == query[k] for k in ("transfer_group", "destination") if k in query)]
            if "starting_after" in query:
                ids = [t["id"] for t in found]
                found = found[ids.index(query["starting_after"]) + 1:] if query["starting_after"] in ids else []
            limit = min(int(query.get("limit", 10)), peer.page_size)
            return {"object": "list", "data": found[:limit], "has_more": len(found) > limit, "url": "/v1/transfers"}

    return Handler


def _missing(message: str, param: str) -> dict:
    """Stripe's answer (400, or 404 for a path) about an object it does not have."""
    return {"error": {"type": "invalid_request_error", "code": "resource_missing", "param": param,
                      "message": message}}


class PeerServer:
    def __init__(self):
        self.peer = Peer()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.peer))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # polled every 50 ms, not 0.5 s: stop() waits for one poll, and every test stops its peer
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
