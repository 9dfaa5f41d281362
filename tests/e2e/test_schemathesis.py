"""schemathesis over every operation of the OpenAPI document, in-process (WSGI), with a real
tenant: admin keys of both modes and a provider key, the stateful links the document declares
(create -> get/patch/delete), and the checks that the document and the server agree: no 5xx,
answers as documented (status, content type, schema), no valid request refused and no invalid
one accepted. A short, seeded slice for CI, on PostgreSQL (the production database; bin/test's
SQLite pass leaves it out to keep CI short); tests/fuzz/run_schemathesis.py is the long run, on
both databases (its figures in docs/reliability.md)."""
from __future__ import annotations

import os

import pytest

from tests.fuzz import schemathesis_run

pytestmark = pytest.mark.slow

MAX_EXAMPLES = int(os.environ.get("AGGREGATOR_FUZZ_EXAMPLES", "2"))
SEED = int(os.environ.get("AGGREGATOR_FUZZ_SEED", "16"))
PHASES = tuple(os.environ.get("AGGREGATOR_FUZZ_PHASES", "examples,fuzzing,stateful").split(","))


def test_schemathesis_finds_no_disagreement_between_document_and_server(postgres_only, app, make_tenant):
    total = schemathesis_run.run_all(app, make_tenant(), max_examples=MAX_EXAMPLES, seed=SEED, phases=PHASES,
                                     max_steps=int(os.environ.get("AGGREGATOR_FUZZ_STEPS", "20")),
                                     progress=print if os.environ.get("AGGREGATOR_FUZZ_PROGRESS") else None)
    print(total.summary())
    assert not total.errors, total.errors
    assert not total.failures, "\n".join([total.summary(), *total.examples])
    assert total.operations >= schemathesis_run.documented_operations(app), total.summary()
