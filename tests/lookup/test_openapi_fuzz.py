"""Schemathesis: property-based requests generated from /openapi.json find no server error and no response
that breaks the documented schema, status codes or content types (bounded: a few examples per operation).

Each operation's strategy is driven with hypothesis directly (schemathesis' lazy pytest fixture loader
does not run under pytest 9). The constraints the document cannot state change with the served run: `n <=
top_n` (`n <= similar_k` for similar movies) and genres that are the run's; for such requests only the
"schema-valid data is accepted" check is skipped; the 422 they get must still match the documented error
schema."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance
from synthetic_runs import GENRE_NAMES, SIMILAR_K, write_run

from lookup_service.app import create_app
from lookup_service.settings import ServiceSettings

EXAMPLES_PER_OPERATION = 40


def test_every_operation_honours_its_schema(output_dir):
    top_n = 20
    write_run(output_dir, top_n=top_n, extras=True)
    app = create_app(ServiceSettings(output_dir=output_dir, reload_interval_seconds=0))
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 8
    statuses = {}
    for operation in operations:
        _fuzz(operation, SIMILAR_K if operation.path.endswith("/similar") else top_n, statuses)

    assert all(500 not in seen for seen in statuses.values()), statuses
    assert {200, 404, 422} <= set().union(*statuses.values()), statuses
    assert {200, 422} <= statuses["POST /v1/recommendations"], statuses


def _fuzz(operation, limit: int, statuses: dict[str, set[int]]) -> None:
    """Run one operation's strategy; `limit`: the largest n the served run accepts for it."""

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case):
        given_values = {**(case.query or {}), **(case.body if isinstance(case.body, dict) else {})}
        n = given_values.get("n")
        run_specific = (isinstance(n, int | float) and n > limit) or any(
            isinstance(given_values.get(name), str) and given_values[name] not in GENRE_NAMES
            for name in ("genre", "exclude_genre")
        )
        response = case.call_and_validate(
            excluded_checks=[positive_data_acceptance] if run_specific else None
        )
        statuses.setdefault(operation.label, set()).add(response.status_code)

    check()
