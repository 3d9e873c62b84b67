"""The command line of ``python -m fmnist_scaling.train``: what is checked before Hydra starts,
and what becomes of an error Hydra itself raises.

Before Hydra: a moved key, a sweep without ``-m``, an unknown config-group choice, a key the
config does not have (with the closest key), a value its rule refuses
(:mod:`fmnist_scaling.run.schema`; each value of a sweep too) and an output folder that cannot be
written are each one line and exit 2, with nothing made (Hydra would print a paragraph, or a
traceback while making the folder); path values are taken as a shell would (``~``) and quoted
for Hydra's grammar (:mod:`fmnist_scaling.run.overrides`). Hydra's flags that only print
(``--cfg``, ``--info``, ``--help``) create nothing; ``--help`` is printed without Hydra's slow
listing (:mod:`fmnist_scaling.run.help`).
"""

from __future__ import annotations

import difflib
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

from fmnist_scaling.run import context, experiment, resolvers
from fmnist_scaling.run.help import HELP_FLAGS, app_help
from fmnist_scaling.run.lifecycle import quiet_interrupts
from fmnist_scaling.run.migrate import moved_key
from fmnist_scaling.run.overrides import expand_home, quote_paths, unknown_choice
from fmnist_scaling.utils.errors import EXIT_BAD_INPUT, EXIT_FAULT, SIGNAL_EXIT, ConfigError, as_fault, full_error
from fmnist_scaling.utils.log import log

#: Hydra's flags that only print (a config, help, info): nothing is run or created.
PRINT_ONLY_FLAGS = ("--cfg", "-c", "--info", "-i", "--help", "-h", "--hydra-help", "--shell-completion", "-sc")
#: Arguments that could set ``hydra.mode``, or bring configs (a Hydra group, another folder) that
#: might: a sweep on such a command line may be one Hydra runs as a multirun.
_MAY_SET_MODE = re.compile(r"^[+~]*hydra([./](mode|searchpath)|/)|^(-cp|-cn|-cd|--config-|--experimental-rerun)")


def unwritable_output(argv: list[str]) -> str | None:
    """Why the output folder of ``argv``'s run or sweep cannot be written, or None. Checked
    before Hydra starts, which would otherwise fail creating it with a traceback."""
    overrides = dict(a.split("=", 1) for a in argv if a.startswith(("hydra.run.dir=", "hydra.sweep.dir=")))
    for key, folder in overrides.items() or {"output": "lightning_logs"}.items():
        path = Path(folder)
        while not path.exists() and path != path.parent:
            path = path.parent
        if not path.is_dir() or not os.access(path, os.W_OK):
            return f"{key}={folder} cannot be written: {path} is {'not a folder' if not path.is_dir() else 'read-only'}"
    return None


def nothing_to_resume(argv: list[str]) -> str | None:
    """Why a single run's ``resume=<folder>`` names no run, or None: said before Hydra writes its
    ``.hydra/`` and ``train.log`` into the folder (and a rejected run's cleanup took an empty one)."""
    values = [a.split("=", 1)[1] for a in argv if a.startswith("resume=")]
    if not values or values[-1] in ("null", "None", "") or "-m" in argv or "--multirun" in argv:
        return None
    return experiment.no_run_to_resume(values[-1], Path(values[-1]))


def run(main: Callable[[], object]) -> None:
    """Check ``sys.argv``, then call Hydra's ``main``; an error that escapes it is Hydra's own
    (a usage error: exit 2; the run folder on a full disk: exit 3), said in one line."""
    argv = expand_home(sys.argv[1:])  # every check below sees the paths the run will use
    # joblib's workers stopped by Ctrl-C leave semaphores that Python's resource tracker (a process
    # of its own, started later with this environment) warns of in two lines: nothing is lost
    warnings = os.environ.get("PYTHONWARNINGS")
    os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [warnings, "ignore:resource_tracker:UserWarning"]))
    dry_run = any(a.split("=", 1)[0] in PRINT_ONLY_FLAGS for a in argv)
    context.command = context.Command(started_at=time.time(), dry_run=dry_run)
    problem = moved_key(argv) or sweep_without_multirun(argv) or unknown_choice(argv, resolvers.CONF_DIR)
    problem = problem or bad_override(argv, dry_run)
    problem = problem or (None if dry_run else unwritable_output(argv) or nothing_to_resume(argv))
    sys.argv[1:] = quote_paths(argv)  # a sweep job's folder (resume=...) has "=" and "," in its name
    named = [a.split("=", 1)[1] for a in argv if a.startswith("hydra.run.dir=")]
    if named and not dry_run:
        context.command.note_new_folders(named[-1])
    if problem:
        log.error(f"error: {problem}")
        sys.exit(EXIT_BAD_INPUT)
    if any(a in HELP_FLAGS for a in argv) and "--hydra-help" not in argv:
        text = app_help(sys.argv[1:])
        if text is not None:  # else Hydra prints it, the slow way
            print(text)
            return
    quiet_interrupts()
    try:
        main()
    except (KeyboardInterrupt, SystemExit) as err:  # Ctrl-C, a signal: a sweep sums up what it finished
        from fmnist_scaling.tools.report import write_unfinished_summary

        sweep_dir = write_unfinished_summary()
        if not isinstance(err, KeyboardInterrupt):
            raise
        # a sweep whose jobs run elsewhere (joblib's workers): they say how each ended
        where = f"; the finished jobs are summed up in {sweep_dir}" if sweep_dir else ""
        log.error(f"sweep stopped by SIGINT{where}; the same command again finishes the rest")
        sys.exit(SIGNAL_EXIT["SIGINT"])
    except Exception as err:  # the task ends its own way (train, reject, end_early): this is Hydra's
        if full_error():
            raise
        fault = as_fault(err, "write the run folder")  # e.g. .hydra/ on a full disk
        log.error(f"error: {fault or err}")
        sys.exit(EXIT_FAULT if fault else EXIT_BAD_INPUT)  # else a usage error


def _conf_sets_mode() -> bool:
    """Whether a yaml of conf/ has a ``mode`` key (``hydra: mode: MULTIRUN``, or any other: kept simple)."""
    pattern = re.compile(r"^\s*(hydra\.)?mode\s*:", re.MULTILINE)
    return any(pattern.search(path.read_text()) for path in resolvers.CONF_DIR.rglob("*.yaml"))


#: What makes an override's value a sweep in Hydra's grammar: a comma outside brackets and quotes
#: (checked by Hydra's parser), or a sweep function.
_MAYBE_SWEEP = re.compile(r",|\b(choice|range|glob|interval)\(")


def sweep_without_multirun(argv: list[str]) -> str | None:
    """A sweep (``seed=0,1``) on the command line of a single run, as one line naming ``-m``: Hydra
    would print five lines and exit 1. None for a multirun, a list (``key=[a,b]``), a quoted
    value, and wherever a config or an argument could set the mode."""
    # paths quoted first, as Hydra will get them: a sweep job's folder has commas in its name
    values = [
        a for a in quote_paths(argv) if "=" in a and not a.startswith("-") and _MAYBE_SWEEP.search(a.split("=", 1)[1])
    ]
    if not values or any(a in ("-m", "--multirun") or _MAY_SET_MODE.match(a) for a in argv) or _conf_sets_mode():
        return None
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(values)
    except Exception:  # noqa: BLE001 - a grammar error: Hydra tells
        return None
    sweep = next((o for o in parsed if o.is_sweep_override() and not o.key_or_group.startswith("hydra")), None)
    if sweep is None:
        return None
    key = sweep.key_or_group
    group = "/" in key or (resolvers.CONF_DIR / key).is_dir()  # a choice of configs: no list to suggest
    also = "" if group else f", or write a list as {key}=[a,b]"
    return (
        f"{sweep.input_line} is a sweep, and this is a single run: add -m (--multirun) to train one run per value{also}"
    )


def bad_override(argv: list[str], dry_run: bool = False) -> str | None:
    """The first override of a key that the composed config does not have
    (``model.optimizer.lrr=0.1``: one line naming the closest key; Hydra would print five lines
    and exit 1), or of a value that its rule refuses, each value of a sweep included (not for a
    command that only prints). None when all hold, or when Hydra alone can tell (a grammar error,
    a composition that fails for another reason)."""
    keys = override_keys(argv)
    if not keys:
        return None
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from fmnist_scaling.run.config_tree import compose, flatten
    from fmnist_scaling.run.schema import rule_for, show
    from fmnist_scaling.run.validate import validate

    try:
        parsed = OverridesParser.create().parse_overrides([a for a in argv if not a.startswith("-")])
        cfg = compose("train", [o.input_line for o in parsed if o.input_line is not None and not o.is_sweep_override()])
    except Exception:  # noqa: BLE001 - an unknown key; else a grammar error or a bad choice: Hydra tells
        return unknown_key(argv, keys)
    swept = next(
        (o.key_or_group for o in parsed if o.is_sweep_override() and experiment.harmless(o.key_or_group)), None
    )
    if swept:  # its jobs would share one folder: a job's folder is named by the experiment only
        return (
            f"a sweep over {swept} is refused: it does not change what a run computes, so every job "
            f"would be the same run, in one folder; give one value per command"
        )
    if any(key not in flatten(OmegaConf.to_container(cfg, resolve=False), inner=True) for key in keys):  # swept
        return unknown_key(argv, keys)
    if dry_run:
        return None
    try:
        validate(cfg, before_hydra=True)
    except ConfigError as err:
        return str(err)
    for override in parsed:  # each value of a sweep over a key
        rule = rule_for(override.key_or_group, cfg) if override.is_discrete_sweep() else None
        if not rule:
            continue
        for value in override.sweep_iterator():
            if not rule.ok(value):
                return f"{override.key_or_group}={show(value)} is invalid: must be {rule.allowed}"
    return None


def override_keys(argv: list[str]) -> list[str]:
    """The config keys that ``argv``'s plain overrides set: not a group choice, not Hydra's own,
    not an addition (``+``) or a deletion (``~``)."""
    plain = [a.split("=", 1)[0] for a in argv if "=" in a and not a.startswith(("+", "~", "-"))]
    return [k for k in plain if not k.startswith("hydra.") and "/" not in k and not (resolvers.CONF_DIR / k).is_dir()]


def unknown_key(argv: list[str], keys: list[str], config_name: str = "train") -> str | None:
    """A key of ``keys`` that the config (conf/<config_name>.yaml) composed with ``argv``'s group
    choices does not have, as one line naming the closest key; None when all exist, or when
    composing fails."""
    from omegaconf import OmegaConf

    from fmnist_scaling.run.config_tree import compose, flatten

    groups = [a for a in argv if "=" in a and not a.startswith("-") and a.split("=", 1)[0] not in keys]
    groups = [a for a in groups if "," not in a.split("=", 1)[1] or a.startswith("hydra.searchpath=")]
    try:
        cfg = compose(config_name, groups)
    except Exception:  # noqa: BLE001 - a sweep over groups, a bad choice: Hydra tells
        return None
    known = set(flatten(OmegaConf.to_container(cfg, resolve=False), inner=True))
    for key in keys:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}?" if close else f"see python -m fmnist_scaling.{config_name} --cfg job"
            addition = f" (+{key}=... adds a new one)" if config_name == "train" else ""  # evaluate takes none
            return f"{key} is not a key of the config: {hint}{addition}"
    return None
