"""Schemathesis: property-based requests generated from /openapi.json find no server error and no response
that breaks the documented schema, status codes or content types (bounded: a few examples per operation).

Each operation's strategy is driven with hypothesis directly (schemathesis' lazy pytest fixture loader
does not run under pytest 9). The one constraint the document cannot state is `n <= top_n` of the served
run (it changes with the run): for such requests only the "schema-valid data is accepted" check is skipped;
the 422 they get must still match the documented error schema."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance
from synthetic_runs import write_run

from lookup_service.app import create_app
from lookup_service.settings import ServiceSettings

EXAMPLES_PER_OPERATION = 40


def test_every_operation_honours_its_schema(output_dir):
    top_n = 20
    write_run(output_dir, top_n=top_n)
    app = create_app(ServiceSettings(output_dir=output_dir, reload_interval_seconds=0))
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 5
    statuses = set()
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case):
            n = (case.query or {}).get("n")
            above_top_n = isinstance(n, int) and n > top_n
            response = case.call_and_validate(
                excluded_checks=[positive_data_acceptance] if above_top_n else None
            )
            statuses.add(response.status_code)

        check()

    assert {200, 404, 422} <= statuses, statuses
