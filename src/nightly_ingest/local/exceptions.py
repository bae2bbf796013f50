"""Errors raised by the local AWS."""


class LocalAWSError(Exception):
    """Base class of every error that the local AWS raises on purpose."""


class TemplateError(LocalAWSError):
    """The template is invalid: a bad reference, a missing parameter value or a wrong shape."""


class TemplateUnsupportedError(TemplateError):
    """The template uses a resource type, property or intrinsic function that runs only on AWS."""


class ParameterValueError(TemplateError):
    """A parameter value breaks the constraints that the template declares for it."""


class ProvisionError(LocalAWSError):
    """Creating a resource of the template in the emulator failed."""


class ServerStartError(LocalAWSError):
    """The emulator server did not come up."""


class ServerStopError(LocalAWSError):
    """Processes or a listening port of the emulator were left after stop."""


class ExecutionWaitError(LocalAWSError):
    """A Step Functions execution did not finish within the bounds of the wait."""


class ExecutionTimeoutError(ExecutionWaitError):
    """The execution was still running at the deadline."""


class ExecutionStalledError(ExecutionWaitError):
    """The execution made no progress for longer than the stall timeout."""


class FaultRuleError(LocalAWSError):
    """A fault rule is invalid: a missing or wrong field, or a kind that its action cannot take."""
