"""Errors worded for the operator: the CLI and the web app show them as one line, never a traceback."""


class BlastError(Exception):
    """Something the operator can fix: a bad file, an unknown campaign, a wrong flag."""


class NotFound(BlastError):
    """A campaign, schedule or account that does not exist."""


class Conflict(BlastError):
    """Not now: the campaign's status does not allow it (launch a running one, resume a finished one)."""
