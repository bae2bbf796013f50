"""Errors of the command line and the local runner."""


class IngestCliError(Exception):
    """A problem the user can fix: the command prints the message on one line and exits 2."""


class RunFailedError(Exception):
    """The local run could not finish or account for every message."""
