"""Real responses checked against what the OpenAPI document says they are."""
from __future__ import annotations


def _response_schema(spec: dict, method: str, path: str, status: int) -> dict:
    responses = spec["paths"][path][method.lower()]["responses"]
    described = responses.get(str(status)) or responses["default"]
    if "$ref" in described:  # a shared response, e.g. the error one
        described = spec["components"]["responses"][described["$ref"].rsplit("/", 1)[1]]
    return described["content"]["application/json"]["schema"]


def conforms(spec: dict, method: str, path: str, response) -> None:
    """The response's body is valid against what the document says `path` answers with its status."""
    from openapi_schema_validator import OAS31Validator

    schema = {**_response_schema(spec, method, path, response.status_code), "components": spec["components"]}
    errors = sorted(OAS31Validator(schema).iter_errors(response.json), key=str)
    assert not errors, f"{method} {path} {response.status_code}: " + "; ".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5])
