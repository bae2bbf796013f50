"""A Distributed Map with more items on one worker than moto's default recursion limit allows."""

import json
from pathlib import Path

from nightly_ingest.local import LocalAWS

TEMPLATE = Path(__file__).resolve().parent / "long_map" / "template.yaml"
ITEMS = 1_500


def test_distributed_map_past_recursion_limit_succeeds(tmp_path: Path) -> None:
    # GIVEN a Map with MaxConcurrency 1 over more items than the ~985 that one worker of
    # moto's interpreter reaches under Python's default recursion limit
    with LocalAWS(TEMPLATE, tmp_path / "logs") as local:
        local.client("s3").put_object(
            Bucket=local.resources["Items"], Key="items.json", Body=json.dumps(list(range(ITEMS)))
        )

        # WHEN it runs
        execution_arn = local.start_execution({})
        description = local.wait_for_execution(execution_arn, stall_timeout=30, timeout=120)

    # THEN it ends instead of stalling
    assert description["status"] == "SUCCEEDED"
