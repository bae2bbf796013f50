"""Static checks of template.yaml and the state machine definition it deploys."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nightly_ingest.local.template import load_template

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
DEFINITION = ROOT / "statemachine" / "ingest.asl.json"
BIN = Path(sys.executable).parent


def _template() -> dict[str, Any]:
    return load_template(TEMPLATE)


def _states(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Return every state of the definition, nested Map processors included, by name."""
    found: dict[str, dict[str, Any]] = {}
    for name, state in definition["States"].items():
        found[name] = state
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            found.update(_states(processor))
    return found


def _tool(name: str) -> str:
    path = BIN / name
    return str(path) if path.exists() else shutil.which(name) or name


def test_cfn_lint_template_passes() -> None:
    result = subprocess.run(
        [_tool("cfn-lint"), str(TEMPLATE)], capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_validate_lint_template_passes() -> None:
    environment = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1"}

    result = subprocess.run(
        [_tool("sam"), "validate", "--lint", "--template", str(TEMPLATE)],
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
        cwd=ROOT,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_definition_substitutions_all_defined() -> None:
    machine = _template()["Resources"]["IngestStateMachine"]["Properties"]
    used = set(re.findall(r"\$\{(\w+)\}", DEFINITION.read_text()))

    assert used == set(machine["DefinitionSubstitutions"])
    assert machine["DefinitionUri"] == "statemachine/ingest.asl.json"


def test_definition_every_task_has_retry_and_catch() -> None:
    states = _states(json.loads(DEFINITION.read_text()))
    tasks = {name: state for name, state in states.items() if state["Type"] == "Task"}

    assert sorted(tasks) == [
        "DeadLetterSlice",
        "Parse",
        "Plan",
        "Reconcile",
        "RecordOutcome",
        "Write",
    ]
    for name, state in tasks.items():
        assert state.get("Retry"), f"{name} has no Retry"
        assert state.get("Catch"), f"{name} has no Catch"


def test_definition_uses_only_constructs_the_local_engine_runs() -> None:
    definition = json.loads(DEFINITION.read_text())
    text = json.dumps(definition)
    map_state = definition["States"]["ProcessSlices"]

    # moto's interpreter rejects these at CreateStateMachine, or accepts them and runs them
    # differently from AWS.
    assert "ItemBatcher" not in map_state
    assert "ResultWriter" not in map_state
    assert "ToleratedFailurePercentage" not in map_state
    assert map_state["ItemReader"]["ReaderConfig"]["InputType"] == "JSON"
    assert map_state["ItemProcessor"]["ProcessorConfig"] == {
        "Mode": "DISTRIBUTED",
        "ExecutionType": "STANDARD",
    }
    assert definition.get("QueryLanguage", "JSONPath") == "JSONPath"
    assert "JSONata" not in text
    assert map_state["Label"] == "Slice"
    assert map_state["MaxConcurrencyPath"] == "$.config.max_concurrency"


def test_definition_map_output_is_dropped() -> None:
    map_state = json.loads(DEFINITION.read_text())["States"]["ProcessSlices"]

    # The children's counts travel through the ledger table, so the payload stays small
    # whatever the batch size.
    assert map_state["ResultPath"] is None


@pytest.mark.parametrize(
    ("logical_id", "expected"),
    [
        pytest.param("IngestTable", {"PointInTimeRecoveryEnabled": True}, id="table-pitr"),
        pytest.param("LedgerTable", {"PointInTimeRecoveryEnabled": True}, id="ledger-pitr"),
    ],
)
def test_tables_point_in_time_recovery_enabled(logical_id: str, expected: dict[str, Any]) -> None:
    properties = _template()["Resources"][logical_id]["Properties"]

    assert properties["PointInTimeRecoverySpecification"] == expected
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["SSESpecification"] == {"SSEEnabled": True}


def test_dead_letter_queue_keeps_messages_14_days() -> None:
    properties = _template()["Resources"]["DeadLetterQueue"]["Properties"]

    assert properties["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert properties["SqsManagedSseEnabled"] is True
