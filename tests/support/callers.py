"""The API's callers in the tests: one key each, the way a provider's or a platform's code calls."""
from __future__ import annotations

from dataclasses import dataclass


class Caller:
    """Makes API requests with one key, the way a provider's or a platform's code would."""

    def __init__(self, client, key: str):
        self.client, self.key = client, key

    def _headers(self, extra):
        return {"Authorization": f"Bearer {self.key}", **(extra or {})}

    def get(self, path, **kw):
        return self.client.get(path, headers=self._headers(kw.pop("headers", None)), **kw)

    def post(self, path, json=None, **kw):
        return self.client.post(path, json=json, headers=self._headers(kw.pop("headers", None)), **kw)

    def patch(self, path, json=None, **kw):
        return self.client.patch(path, json=json, headers=self._headers(kw.pop("headers", None)), **kw)

    def put(self, path, json=None, **kw):
        return self.client.put(path, json=json, headers=self._headers(kw.pop("headers", None)), **kw)

    def delete(self, path, **kw):
        return self.client.delete(path, headers=self._headers(kw.pop("headers", None)), **kw)


@dataclass
class Tenant:
    id: str
    admin: dict[str, Caller]  # mode -> caller
    client: object

    def provider(self, mode: str = "test", name: str = "App", rate: str = "0.30") -> Caller:
        response = self.admin[mode].post("/v1/providers", {"name": name, "revenue_share_rate": rate})
        assert response.status_code == 201, response.json
        caller = Caller(self.client, response.json["api_key"])
        caller.id = response.json["id"]
        return caller

    def customer(self, external_id: str = "cust-1", mode: str = "test", **fields) -> dict:
        response = self.admin[mode].post("/v1/customers", {"external_id": external_id, **fields})
        assert response.status_code == 201, response.json
        return response.json
