"""``python -m fmnist_scaling.train --help``, printed without Hydra's own help path.

Hydra builds its help by listing every config group's options, and each listing composes the
config afresh (over a hundred compositions: 1.2-1.7 s on a 2-core machine). The text is the same
whatever the listing costs: the app's template (``hydra.help.template``), its groups and their
options as they lie in ``conf/``, and the composed config. This module composes once and reads
the groups from the folder: the same text (a test compares the two) in a fraction of the time.
Where a command could list more than ``conf/`` holds (``hydra.searchpath=``, ``--resolve``), it
answers None and Hydra prints its own help.
"""

from __future__ import annotations

import string
from pathlib import Path

from fmnist_scaling.run.resolvers import CONF_DIR

#: The flags that ask for the app's help (Hydra's ``--hydra-help`` stays Hydra's).
HELP_FLAGS = ("--help", "-h")


def config_groups(conf_dir: Path = CONF_DIR) -> dict[str, list[str]]:
    """Every config group under ``conf_dir`` that holds at least one option (``model/net``), with
    its options sorted: what Hydra's help lists under "Configuration groups"."""
    groups = {}
    for folder in sorted(p for p in conf_dir.rglob("*") if p.is_dir()):
        name = folder.relative_to(conf_dir).as_posix()
        options = sorted(f.stem for f in folder.glob("*.yaml"))
        if options and name != "hydra" and not name.startswith("hydra/"):
            groups[name] = options
    return groups


def app_help(argv: list[str], app_name: str = "train") -> str | None:
    """The text Hydra's ``--help`` prints for ``argv`` (its overrides applied), or None where
    only Hydra can tell (a search path of the user's, ``--resolve``, a config that fails)."""
    if any(a.startswith("hydra.searchpath") or a == "--resolve" for a in argv):
        return None
    from omegaconf import OmegaConf, open_dict

    from fmnist_scaling.run.config_tree import compose

    overrides = [a for a in argv if not a.startswith("-")]
    try:
        cfg = compose("train", overrides, job_name=app_name, hydra=True)
    except Exception:  # noqa: BLE001 - Hydra says what is wrong, in its own words
        return None
    template = OmegaConf.select(cfg, "hydra.help.template")
    if "$FLAGS_HELP" in template or "$HYDRA_CONFIG_GROUPS" in template:  # Hydra's own listings
        return None
    with open_dict(cfg):
        del cfg["hydra"]
    groups = "".join(f"{group}: {', '.join(options)}\n" for group, options in sorted(config_groups().items()))
    return string.Template(template).substitute(APP_CONFIG_GROUPS=groups, CONFIG=OmegaConf.to_yaml(cfg))
