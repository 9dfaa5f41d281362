"""localstripe, a stateful fake of Stripe's API (PyPI; GPL), run as a separate process and never
imported: the demo charges cards against it, and the tests prove the Stripe gateway against it.

It is used only when its executable was installed next to this Python's (the project's
virtualenv installs it with the test extras); `executable()` says whether it is there. A server
is started on a free port of 127.0.0.1 with `--from-scratch` (no state from a previous run) and
stopped by `stop()`, or at the end of a `with` block, whatever happened inside it.

Its state is kept in memory only. localstripe pickles its whole store to one file,
/tmp/localstripe.pickle, on every write and after every POST: each request cost more than the
one before (a test session's server, or the demo's, slowed as it filled) and every server on
the machine wrote the same file. Started from scratch, it never reads that file back, so the
server is run with the dump turned off (`_SERVE`)."""
from __future__ import annotations

import shutil
import socket
import subprocess  # nosec B404  # starts the localstripe program found next to this Python, no shell
import sys
import time
from pathlib import Path

import stripe

#: localstripe's own entry point (`localstripe.server.start`, which reads --port and
#: --from-scratch), run by the Python next to its executable, with the store's dump to disk off.
_SERVE = ("import sys; from localstripe import resources, server; "
          "resources.Store.dump_to_disk = lambda self: None; sys.argv[0] = 'localstripe'; server.start()")

CARD_OK = "4242424242424242"
#: Attaches to a customer, then every charge is declined (card_declined).
CARD_DECLINED = "4000000000000341"
#: Answers requires_action (3-D Secure).
CARD_3DS = "4000002500003155"


def executable() -> str | None:
    """The localstripe executable next to this Python's, or None: not installed."""
    return shutil.which("localstripe", path=str(Path(sys.executable).parent))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalStripe:
    """A localstripe server of this process's own, and a Stripe client of it."""

    def __init__(self, program: str, *, start_seconds: float = 30.0):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        python = Path(program).with_name(Path(sys.executable).name)
        self.process = subprocess.Popen(  # nosec B603  # our argv (the installed localstripe, our port), no shell
            [str(python), "-c", _SERVE, "--port", str(self.port), "--from-scratch"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self._wait_listening(start_seconds)
        except BaseException:
            self.stop()
            raise
        self.client = stripe.StripeClient("sk_test_localstripe", base_addresses={"api": self.url},
                                          max_network_retries=0)

    def _wait_listening(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"localstripe did not start on port {self.port}") from None
                time.sleep(0.1)

    def customer_with_card(self, number: str = CARD_OK, email: str = "billing@example.com") -> tuple[str, str]:
        """A Stripe customer with a card attached -> (cus_…, pm_…)."""
        customer = self.client.v1.customers.create(params={"email": email})
        return customer.id, self.attach_card(customer.id, number)

    def attach_card(self, customer: str, number: str = CARD_OK) -> str:
        """A new card attached to the Stripe customer -> its payment method (pm_…)."""
        method = self.client.v1.payment_methods.create(params={
            "type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}})
        self.client.v1.payment_methods.attach(method.id, params={"customer": customer})
        return method.id

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "LocalStripe":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
