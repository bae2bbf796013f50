"""Local AWS for nightly-ingest: moto and a local Lambda service behind one endpoint on 127.0.0.1.

``LocalAWS`` starts it for a SAM template, provisions the template's resources and runs each
function's handler in execution environment processes. See ``LocalAWS`` for the API.
"""

from .exceptions import (
    ExecutionStalledError,
    ExecutionTimeoutError,
    ExecutionWaitError,
    FaultRuleError,
    LocalAWSError,
    ParameterValueError,
    ProvisionError,
    ServerStartError,
    ServerStopError,
    TemplateError,
    TemplateUnsupportedError,
)
from .executions import start_execution, unique_execution_name, wait_for_execution
from .local_aws import LocalAWS
from .resources import DEFAULT_CONCURRENCY_LIMIT

__all__ = [
    "DEFAULT_CONCURRENCY_LIMIT",
    "ExecutionStalledError",
    "ExecutionTimeoutError",
    "ExecutionWaitError",
    "FaultRuleError",
    "LocalAWS",
    "LocalAWSError",
    "ParameterValueError",
    "ProvisionError",
    "ServerStartError",
    "ServerStopError",
    "TemplateError",
    "TemplateUnsupportedError",
    "start_execution",
    "unique_execution_name",
    "wait_for_execution",
]
