"""fmnist_scaling: how much does the scale of the input change what a neural network learns?

The package in three parts (dependencies point down the list, never up):

- ``train.py``, ``evaluate.py``: the entry points, each one straight pipeline.
- ``tools/``: the study's tools (``python -m fmnist_scaling.tools.<name>``): the benchmark and its
  reference loops, the GPU check, the threshold measurement, sweep reports, the scale law.
- ``run/``: the run machinery: the command line and Hydra resolvers, the checks of a config and of
  a resume, the lifecycle of a run (signals, early ends), its record, threads, progress bar.
- ``data/``, ``models/``: the science: the datasets and scaling modes, the networks and the
  LightningModule that trains them, the diagnostics.
- ``utils/``: what every part uses: errors and exit codes, atomic files, the log.
"""

__version__ = "0.1.0"

from fmnist_scaling.utils.versions import wrong_version as _wrong_version  # noqa: E402 - first, before any import of them

# another release of OmegaConf, Hydra or Lightning than the code was written for: said at once,
# before their own warnings; a command (python -m, where argv[0] is "-m" while the package
# imports) stops in one line and exit 1, an import from a program of yours raises ImportError
if _problem := _wrong_version():
    import sys

    if sys.argv[:1] == ["-m"]:
        raise SystemExit(f"error: {_problem}")
    raise ImportError(_problem)
