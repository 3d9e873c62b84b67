"""The command line as users type it: paths, and config-group choices.

Hydra parses every override with its grammar, where ``=`` and ``,`` have meanings; but the
paths users pass are sweep job folders, named by their overrides (``.../scaling=max,seed=1``).
``resume=<job dir>`` or ``ckpt_path=<job dir>`` then failed with "mismatched input '='". Before
Hydra sees them, the values of the path keys below are quoted for it when they hold such
characters (and no interpolation), so any path works as typed.

A config-group choice that does not exist (``model/net=resnet``) is named in one line with the
choices there are (:func:`unknown_choice`), where Hydra would print a paragraph and exit 1.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

#: Overrides whose value is a path.
PATH_KEYS = ("resume", "ckpt_path", "data.root", "data.local_copy", "hydra.run.dir", "hydra.sweep.dir")
#: Any character outside what Hydra's grammar takes plainly unquoted (letters, digits and
#: ``_-/+.$%*@?|``): ``~``, ``#``, ``&``, ``!``, a space, a letter with an accent each stop its
#: lexer; ``=``, ``,``, brackets, quotes, ``:`` and ``\`` have meanings there.
_SPECIAL = re.compile(r"[^A-Za-z0-9_\-/+.$%*@?|]")


def expand_home(argv: list[str]) -> list[str]:
    """``argv`` with each path override's value as a shell would take it: ``~/data`` is the home
    folder's ``data`` (the shell does not expand ``~`` after ``key=``). Done before any check of
    the command line, so that each sees the path the run will use."""
    expanded = []
    for arg in argv:
        key, eq, value = arg.partition("=")
        if eq and key.lstrip("+~") in PATH_KEYS and value.startswith("~"):
            arg = f"{key}={os.path.expanduser(value)}"
        expanded.append(arg)
    return expanded


def quote_paths(argv: list[str]) -> list[str]:
    """``argv`` with each path override's value expanded (:func:`expand_home`) and quoted for
    Hydra's grammar where it needs it."""
    quoted = []
    for arg in expand_home(argv):
        key, eq, value = arg.partition("=")
        if (
            eq
            and key.lstrip("+~") in PATH_KEYS
            and _SPECIAL.search(value)
            and "${" not in value
            and value[:1] not in "'\""
        ):
            value = "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
            arg = f"{key}={value}"
        quoted.append(arg)
    return quoted


def unknown_choice(argv: list[str], conf_dir: Path) -> str | None:
    """The first ``group=choice`` override naming a choice with no yaml in the group's folder
    (in ``conf_dir`` or a ``file://`` folder of ``hydra.searchpath``), as a one-line error; None
    when all exist, or when Hydra alone can tell (a ``pkg://`` search path, a sweep function)."""
    folders = [conf_dir]
    for arg in argv:
        if arg.startswith("hydra.searchpath="):
            paths = [p.strip(" '\"") for p in arg.partition("=")[2].strip("[]").split(",")]
            if any(not p.startswith("file://") for p in paths if p):
                return None
            folders += [Path(p[len("file://") :]) for p in paths if p]
    for arg in argv:
        key, eq, value = arg.partition("=")
        group = key.lstrip("+~")
        if not eq or "@" in group or "(" in value or not value or not any((f / group).is_dir() for f in folders):
            continue
        if group.startswith("hydra/"):  # Hydra's groups: plugins add choices that no folder here holds
            continue
        choices = sorted({p.stem for f in folders if (f / group).is_dir() for p in (f / group).glob("*.yaml")})
        for choice in (c.strip(" '\"") for c in value.split(",")):  # a sweep lists several
            if choice == "null":  # Hydra's own error for it is a traceback
                return f"{group}=null is invalid: to run without a {group}, remove the group with ~{group}"
            if choice not in choices:
                return f"{group}={choice} is invalid: must be one of {', '.join(choices)}"
        if not key.startswith("+") and group.split("/")[0] not in _default_groups(conf_dir):
            return f"{group}={value} is invalid: {group} is not in the default config; add it with +{group}={value}"
    return None


def _default_groups(conf_dir: Path) -> set[str]:
    """The config groups that ``train.yaml`` chooses by default (``data``, ``scaling``, ``model``, ...):
    the others (``experiment``, ``arch``, ``launcher``) are added with ``+``."""
    import yaml

    defaults = yaml.safe_load((conf_dir / "train.yaml").read_text()).get("defaults", [])
    return {name.split("@")[0].lstrip("/") for item in defaults if isinstance(item, dict) for name in item}
