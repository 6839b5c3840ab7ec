"""One exit-code enum and the domain exceptions the CLI boundary turns into clean messages."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes, documented in the README ("Exit codes")."""

    OK = 0
    ERROR = 1  # unexpected error (a bug: please report it)
    USAGE = 2  # bad flag, unparsable time, malformed file
    CONFIG = 3  # configuration missing or invalid
    AUTH = 4  # 401/403: authentication or permission refused
    NOT_FOUND = 5  # 404 (or 415) on a configured URL
    UNAVAILABLE = 6  # service unavailable after retries, timeout, connection failure
    QUERY = 7  # query rejected by Tempo (TraceQL error)
    THRESHOLD = 8  # a --fail-if threshold was breached
    PARTIAL = 9  # finished, but some records were rejected or skipped as failed
    INTERRUPTED = 130  # Ctrl-C / SIGTERM


class OrbcastError(Exception):
    """Base of every error that ends a run with a clean one-line message.

    ``hint`` is an optional second line telling the user what to do about it.
    """

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(OrbcastError):
    exit_code = ExitCode.USAGE


class ConfigError(OrbcastError):
    exit_code = ExitCode.CONFIG


class AuthError(OrbcastError):
    exit_code = ExitCode.AUTH


class EndpointNotFound(OrbcastError):
    exit_code = ExitCode.NOT_FOUND


class ServiceUnavailable(OrbcastError):
    exit_code = ExitCode.UNAVAILABLE


class QueryRejected(OrbcastError):
    exit_code = ExitCode.QUERY


class ThresholdBreached(OrbcastError):
    exit_code = ExitCode.THRESHOLD


class PartialFailure(OrbcastError):
    """The run finished, but some records were rejected or skipped. Output already written is valid."""

    exit_code = ExitCode.PARTIAL


class MalformedInput(UsageError):
    """A line of an input file could not be read. Carries the file and line number."""

    def __init__(self, path: str, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason
