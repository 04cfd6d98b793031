"""Property-based fuzzing of the HTTP API from its OpenAPI document (docs/openapi.yaml).

Schemathesis generates valid and invalid requests for every operation and
checks each response: no 5xx, a status code and body the document allows
(every failure is ``{"status": "failed", "data": "<message>"}``). Schema-valid
requests may still be refused (413, 400 for nesting or reserved rooms): those
limits are not expressible in the document, so that one check is left out.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests import services

SCHEMA = schemathesis.openapi.from_path(services.REPOSITORY / "docs" / "openapi.yaml")
ARTIFACTS = services.REPOSITORY / "test-artifacts"
FUZZ_QUEUE = "stirfried-fuzz"  # nobody consumes it: fuzzed tasks never run


class FuzzedGateway:
    """The gateway under fuzzing and a tally of the status codes it answered."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.statuses: collections.Counter[int] = collections.Counter()


@pytest.fixture(scope="module")
def fuzzed_gateway(
    base_config: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FuzzedGateway]:
    directory: Path = tmp_path_factory.mktemp("fuzz")
    config = {
        **base_config,
        "task_default_queue": FUZZ_QUEUE,
        "stirfried_available_tasks": ["add"],
        "stirfried_rate_limit": 0,
        # Above anything generated: schemathesis does not count 413 as a rejection (test_limits covers it).
        "stirfried_max_request_bytes": 1 << 20,
        "stirfried_log_level": "WARNING",
    }
    path = services.write_config(directory / "gateway.yaml", config)
    with services.serving_gateway(path, directory / "gateway.log") as url:
        gateway = FuzzedGateway(url)
        yield gateway
    services.purge_queues(base_config["broker_url"], [FUZZ_QUEUE])
    # The figure for the record: how many requests, and what they got.
    ARTIFACTS.mkdir(exist_ok=True)
    summary = {"requests": sum(gateway.statuses.values()), "statuses": dict(sorted(gateway.statuses.items()))}
    (ARTIFACTS / "fuzz-summary.json").write_text(json.dumps(summary, indent=1))


@SCHEMA.parametrize()
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_http_api_answers_every_generated_request_as_documented(case, fuzzed_gateway):
    response = case.call(base_url=fuzzed_gateway.url, timeout=30)
    fuzzed_gateway.statuses[response.status_code] += 1
    case.validate_response(response, excluded_checks=[positive_data_acceptance])
