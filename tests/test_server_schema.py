"""A bounded schemathesis run against the app's own OpenAPI schema, over real HTTP (uvicorn on
loopback): whatever the generated requests, the server never answers 500."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")
schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from server_support import free_port, make_app, wait_for  # noqa: E402


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory, photo_dir: Path) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("schema")
    root = tmp / "root"
    shutil.copytree(photo_dir, root / "photos")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(make_app(tmp, root), host="127.0.0.1", port=port,
                                           log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=30)
    import httpx

    httpx.post(f"http://127.0.0.1:{port}/api/v1/directories/process", json={"directory_path": "photos"},
               timeout=60)
    yield schemathesis.openapi.from_url(f"http://127.0.0.1:{port}/openapi.json"), f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


MAX_EXAMPLES = 20
#: No 5xx, and every answer (errors included) is one the schema documents, in the documented
#: media type and shape.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_no_request_makes_a_500(api_schema: Any, mode: str) -> None:
    """Each operation gets a bounded number of generated requests, valid ones (positive) or
    deliberately invalid ones (negative); ``not_a_server_error`` fails on any 5xx, the others on
    an answer the schema does not document."""
    import httpx
    from schemathesis import GenerationMode

    api_schema, base = api_schema
    before = httpx.get(f"{base}/api/v1/metrics").json()["requests"]
    generation = GenerationMode.POSITIVE if mode == "positive" else GenerationMode.NEGATIVE
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 24  # every REST endpoint of the contract
    if generation is GenerationMode.NEGATIVE:  # only operations with inputs can be given wrong ones
        operations = [op for op in operations
                      if op.definition.raw.get("parameters") or op.definition.raw.get("requestBody")]
    exercised = 0
    for operation in operations:
        @given(case=operation.as_strategy(generation_mode=generation))
        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            case.call_and_validate(checks=CHECKS, timeout=30)

        try:
            check()
        except Unsatisfiable:  # no invalid value exists for, say, a free-text path parameter
            assert generation is GenerationMode.NEGATIVE, operation.label
            continue
        exercised += 1
    assert exercised >= 12
    after = httpx.get(f"{base}/api/v1/metrics").json()["requests"]
    assert after["total"] - before["total"] >= 2 * len(operations)  # the requests did reach the server
    assert "500" not in after["by_status"]
