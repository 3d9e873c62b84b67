"""How a run ends when it cannot finish: one line on stderr and an exit code that says why.

| exit | meaning                                                                 |
|------|-------------------------------------------------------------------------|
| 0    | finished: completed, collapsed or diverged (a diverged run is a result) |
| 2    | bad input: a config value, a path, data that is not Fashion-MNIST       |
| 3    | a fault of the machine or of the code: disk full, I/O error, a crash    |
| 130  | interrupted by Ctrl-C (SIGINT); the line says how to resume             |
| 143  | stopped by SIGTERM (a scheduler, ``kill``); the line says how to resume |

``HYDRA_FULL_ERROR=1`` adds the traceback to a fault's line.
"""

from __future__ import annotations

import errno
import os

EXIT_BAD_INPUT = 2
EXIT_FAULT = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
#: The exit code of a run stopped by each signal.
SIGNAL_EXIT = {"SIGINT": EXIT_INTERRUPTED, "SIGTERM": EXIT_TERMINATED}


class BadInput(ValueError):
    """Something the user gave cannot be used; the message is the whole story (exit 2)."""

    exit_code = EXIT_BAD_INPUT


class ConfigError(BadInput):
    """A bad config value; the message is the whole story (exit 2)."""


class Fault(RuntimeError):
    """The machine failed the run (disk full, I/O error); the message says what to do (exit 3)."""

    exit_code = EXIT_FAULT


def full_error() -> bool:
    """Whether the user asked for tracebacks, Hydra's way."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def describe_os_error(err: OSError, doing: str) -> str:
    """One line for a failed file operation: what was being done, where, why, and the fix."""
    where = f" {err.filename}" if err.filename else ""  # atomic writes always name their file
    reason = err.strerror or type(err).__name__
    fixes: dict[int | None, str] = {
        errno.ENOSPC: "free some space (or point the output elsewhere) and run again",
        errno.EDQUOT: "free some space within your quota and run again",
        errno.EACCES: "choose a folder you can write",
        errno.EPERM: "choose a folder you can write",
        errno.EROFS: "choose a folder on a writable file system",
    }
    fix = fixes.get(err.errno, "check the disk and the path, and run again")
    return f"cannot {doing}{':' + where if where else ''}: {reason}; {fix}"


def as_fault(err: BaseException, doing: str) -> Fault | None:
    """The :class:`Fault` for an error raised while ``doing``, if it is the machine's (an
    ``OSError``, also when wrapped by a library), else None."""
    seen: set[int] = set()
    link: BaseException | None = err
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if isinstance(link, OSError) and link.errno is not None:
            return Fault(describe_os_error(link, doing))
        link = link.__cause__ or link.__context__
    return None


def root_cause(err: BaseException) -> str:
    """The innermost cause of ``err`` in one line, ``TypeError: ...``: Hydra wraps an error of a
    class it instantiates in its own, once per level of nesting."""
    while err.__cause__ is not None:
        err = err.__cause__
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0] if lines else ''}"
