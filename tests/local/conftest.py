"""Fixtures for the local AWS tests: the test stack and one emulator shared by the session."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from nightly_ingest.local import LocalAWS

STACK_DIR = Path(__file__).resolve().parent / "stack"
STACK_TEMPLATE = STACK_DIR / "template.yaml"
PROJECT_TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


@pytest.fixture(scope="session")
def local_aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAWS]:
    """Serve the test stack for the whole session.

    Each test that reads Lambda counters uses a function that no other test invokes, so the
    counters it reads are its own.
    """
    aws = LocalAWS(STACK_TEMPLATE, tmp_path_factory.mktemp("local-aws-logs"))
    with aws:
        yield aws
