"""A small Stripe peer of the tests' own: it checks every request (form-encoded body, Bearer key,
Idempotency-Key on every POST), keeps PaymentIntents and Refunds, honours idempotency keys as
Stripe does (the same key answers the first result), and fails on command, to prove what
localstripe cannot: an unknown outcome (a 500 or a dropped connection after the PaymentIntent was
made, a 429 before, a slow answer) is resolved by lookup and never charged twice."""
from __future__ import annotations

import json
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
    """`fail`: actions for the next POSTs (PaymentIntents or Refunds), in order: "500" (answer 500
    before doing anything), "500_after" (make the object, then answer 500), "drop_after" (make it,
    then close the connection unanswered), "429", "slow_after" (make it, answer after
    `slow_seconds`). Refunds are made with `refund_status` (Stripe may answer `pending`), and
    never for more than is left of their PaymentIntent."""

    intents: dict = field(default_factory=dict)
    refunds: dict = field(default_factory=dict)
    refund_status: str = "succeeded"
    intent_status: str = "succeeded"  # what a new PaymentIntent is (e.g. "processing": a bank debit)
    by_key: dict = field(default_factory=dict)
    seen: list = field(default_factory=list)
    fail: deque = field(default_factory=deque)
    slow_seconds: float = 2.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    problems: list = field(default_factory=list)

    def creates(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "POST" and s.path == "/v1/payment_intents"]

    def refund_creates(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "POST" and s.path == "/v1/refunds"]


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
REFUND_REASONS = {"duplicate", "fraudulent", "requested_by_customer"}


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
                allowed = ALLOWED_REFUND if path == "/v1/refunds" else ALLOWED_CREATE
                unknown = set(form) - allowed
                if path in ("/v1/payment_intents", "/v1/refunds") and unknown:
                    peer.problems.append(f"unexpected parameters {sorted(unknown)}")
                    return self._error(400, f"Unexpected {', '.join(sorted(unknown))}", "invalid_request_error")
                if path == "/v1/refunds" and form.get("reason") not in (None, *REFUND_REASONS):
                    peer.problems.append(f"invalid reason {form['reason']!r}")
                    return self._error(400, "Invalid reason", "invalid_request_error")
                action = peer.fail.popleft() if peer.fail else None
                if action == "500":
                    return self._error(500, "Something went wrong")
                if action == "429":
                    return self._error(429, "Too many requests", "invalid_request_error")
                if key in peer.by_key:
                    answer = peer.by_key[key]
                elif path == "/v1/refunds":
                    answer = self._refund(form)
                    if "error" in answer:
                        return self._answer(400, answer)
                    peer.by_key[key] = answer
                else:
                    answer = {"id": "pi_" + secrets.token_hex(8), "object": "payment_intent",
                              "amount": int(form["amount"]), "currency": form["currency"],
                              "customer": form["customer"], "payment_method": form["payment_method"],
                              "metadata": form.get("metadata", {}), "status": peer.intent_status,
                              "latest_charge": "ch_" + secrets.token_hex(8), "created": int(time.time())}
                    peer.intents[answer["id"]] = answer
                    peer.by_key[key] = answer
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

    return Handler


class PeerServer:
    def __init__(self):
        self.peer = Peer()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.peer))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
