"""What the outside world does in a crash run, as a process of its own that the harness may kill:
`python -m tests.crash.actor <step> <plan.json> <out>`.

* intake: providers post the plan's bills (each under its own Idempotency-Key) and cancel every
  seventh one, through the API; each accepted bill is written to `out` ("accepted <tenant>
  <bill>", "cancelled <tenant> <bill>"). Run again after a kill, it posts them all again: the
  keys make every replay answer the bill already stored.
* refund: finance refunds 1.00 of each tenant's first paid invoice, unless it was refunded
  already (the refund API takes no key: a client that lost the answer looks before asking again).
* approve: finance approves the period's payouts and records the bank transfers of those not
  sent by Stripe.

Any answer that is neither success nor an expected refusal is written to `out` as "error …"
and the process exits 1 (the harness counts it as a violation)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from aggregator import create_app, due

CANCEL_EVERY = 7


class Api:
    def __init__(self, client, key: str):
        self.client, self.key = client, key

    def call(self, method: str, path: str, body=None, **headers):
        response = self.client.open(path, method=method, json=body,
                                    headers={"Authorization": f"Bearer {self.key}", **headers})
        return response.status_code, response.get_json(silent=True)


def intake(client, plan: dict, out) -> bool:
    ok = True
    for n in range(plan["bills"]):
        for t in plan["tenants"]:
            provider = Api(client, t["providers"][n % len(t["providers"])])
            customer = t["customers"][n % len(t["customers"])]
            body = {"customer": customer, "amount": f"{1 + n % 9}.{n % 100:02d}", "currency": "AUD",
                    "revenue_share": True, "description": f"usage {n}"}
            status, answer = provider.call("POST", "/v1/bills", body, **{"Idempotency-Key": f"bill-{n}"})
            if status not in (200, 201):
                out.write(f"error intake {t['id']} bill-{n} {status} {answer}\n")
                ok = False
                continue
            out.write(f"accepted {t['id']} {answer['id']}\n")
            if n % CANCEL_EVERY == 3:
                status, answer2 = provider.call("DELETE", f"/v1/bills/{answer['id']}")
                if status == 200:
                    out.write(f"cancelled {t['id']} {answer['id']}\n")
                elif status != 409:  # 409: its period is closing, so it stays invoiced
                    out.write(f"error cancel {t['id']} {answer['id']} {status} {answer2}\n")
                    ok = False
            out.flush()
    return ok


def refund(client, plan: dict, out) -> bool:
    ok = True
    for t in plan["tenants"]:
        admin = Api(client, t["admin"])
        status, page = admin.call("GET", "/v1/invoices?status=paid&limit=100")
        paid = sorted(i["id"] for i in page["data"])
        if not paid:
            out.write(f"error refund {t['id']}: no paid invoice\n")
            ok = False
            continue
        status, refunds = admin.call("GET", f"/v1/invoices/{paid[0]}/refunds")
        if refunds["data"]:
            continue
        status, answer = admin.call("POST", f"/v1/invoices/{paid[0]}/refunds", {"amount": "1.00"})
        if status not in (200, 201):
            out.write(f"error refund {t['id']} {status} {answer}\n")
            ok = False
        else:
            out.write(f"refunded {t['id']} {answer['id']}\n")
    return ok


def approve(client, plan: dict, out) -> bool:
    ok = True
    for t in plan["tenants"]:
        admin = Api(client, t["admin"])
        status, answer = admin.call("POST", "/v1/payouts/approve", {"period": plan["payout_period"]})
        if status != 200:
            out.write(f"error approve {t['id']} {status} {answer}\n")
            ok = False
            continue
        status, page = admin.call("GET", "/v1/payouts?limit=100")
        for payout in page["data"]:
            if payout["method"] == "bank_transfer" and payout["status"] == "approved":
                status, answer = admin.call("POST", f"/v1/payouts/{payout['id']}/mark_paid",
                                            {"reference": f"BT-{payout['id'][-8:]}"})
                if status not in (200, 409):
                    out.write(f"error mark_paid {payout['id']} {status} {answer}\n")
                    ok = False
    return ok


STEPS = {"intake": intake, "refund": refund, "approve": approve}


def main(argv: list[str]) -> int:
    step, plan_path, out_path = argv
    plan = json.loads(Path(plan_path).read_text())
    app = create_app()
    due.set_lease(app.config["AGGREGATOR_SETTINGS"].lease_seconds)  # as a worker's claims
    with open(out_path, "a") as out:
        ok = STEPS[step](app.test_client(), plan, out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
