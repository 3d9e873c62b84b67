"""Paths on the command line, as users type them.

Hydra parses every override with its grammar, where ``=`` and ``,`` have meanings; but the
paths users pass are sweep job folders, named by their overrides (``.../scaling=max,seed=1``).
``resume=<job dir>`` or ``ckpt_path=<job dir>`` then failed with "mismatched input '='". Before
Hydra sees them, the values of the path keys below are quoted for it when they hold such
characters (and no interpolation), so any path works as typed.
"""

from __future__ import annotations

import re

#: Overrides whose value is a path.
PATH_KEYS = ("resume", "ckpt_path", "data.root", "data.local_copy", "hydra.run.dir", "hydra.sweep.dir")
_SPECIAL = re.compile(r"[=,\s\[\]{}()'\"\\:]")


def quote_paths(argv: list[str]) -> list[str]:
    """``argv`` with each path override's value quoted for Hydra's grammar where it needs it."""
    quoted = []
    for arg in argv:
        key, eq, value = arg.partition("=")
        if eq and key.lstrip("+~") in PATH_KEYS and _SPECIAL.search(value) and "${" not in value and value[:1] not in "'\"":
            value = "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
            arg = f"{key}={value}"
        quoted.append(arg)
    return quoted
