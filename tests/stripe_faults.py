"""A fault-injecting HTTP proxy in front of a Stripe-compatible server (localstripe): requests
pass through unchanged unless a fault is queued for the next POST to a watched path:

* "500" / "429": answered at once (429 with Retry-After), never forwarded: Stripe did nothing;
* "500_after": forwarded (Stripe acted), then answered 500;
* "drop_after": forwarded (Stripe acted), then the connection is closed unanswered;
* "slow_after": forwarded, answered after `slow_seconds` (longer than the client waits).

localstripe ignores Idempotency-Key, so behind this proxy a client that resends blindly after a
fault makes a second PaymentIntent: only a lookup first keeps it to one."""
from __future__ import annotations

import http.client
import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class FaultProxy:
    def __init__(self, upstream: str, watched: tuple[str, ...] = ("/v1/payment_intents", "/v1/refunds")):
        self.upstream = urlsplit(upstream)
        self.watched = watched
        self.faults: deque[str] = deque()
        self.slow_seconds = 2.0
        self.applied: list[tuple[str, str]] = []  # (fault, path)
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _forward(self, body: bytes | None):
                connection = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                connection.request(self.command, self.path, body=body, headers=headers)
                answer = connection.getresponse()
                data = answer.read()
                connection.close()
                return answer.status, [(k, v) for k, v in answer.getheaders()
                                       if k.lower() not in ("transfer-encoding", "connection", "content-length")], data

            def _answer(self, status: int, headers, data: bytes) -> None:
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, retry_after: bool = False) -> None:
                data = json.dumps({"error": {"type": "api_error", "message": f"injected {status}"}}).encode()
                headers = [("Content-Type", "application/json")] + ([("Retry-After", "0")] if retry_after else [])
                self._answer(status, headers, data)

            def _handle(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if self.command == "POST" else None
                fault = None
                if self.command == "POST" and urlsplit(self.path).path.rstrip("/") in proxy.watched:
                    with proxy._lock:
                        fault = proxy.faults.popleft() if proxy.faults else None
                        if fault:
                            proxy.applied.append((fault, self.path))
                if fault in ("500", "429"):
                    return self._error(int(fault), retry_after=fault == "429")
                status, headers, data = self._forward(body)
                if fault == "500_after":
                    return self._error(500)
                if fault == "drop_after":
                    self.close_connection = True
                    self.connection.close()
                    return
                if fault == "slow_after":
                    time.sleep(proxy.slow_seconds)
                self._answer(status, headers, data)

            do_GET = do_POST = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
