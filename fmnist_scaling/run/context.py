"""What this process's command line tells the rest of it: one object, :data:`command`, set by
:func:`fmnist_scaling.run.cli.run` before Hydra starts, read by the config's resolvers (which Hydra
calls with no context of ours), the pipeline's record and a rejected run's clean-up."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Command:
    #: Unix time at which the command line was read: the start of a single run's timeline
    started_at: float | None = None
    #: Hydra only prints (``--cfg``, ``--info``, ``--help``): no folder is made
    dry_run: bool = False
    #: The folders this run made, deepest first: its own and those above it (``lightning_logs/runs``),
    #: by the ``run_dir`` resolver or, for a ``hydra.run.dir`` typed by the user, by Hydra (noted by
    #: :meth:`note_new_folders` before it starts). A run rejected before training removes them
    #: again where they are empty; a folder that was there before is never removed.
    made: list[Path] = field(default_factory=list)
    #: A sweep under way (its folder), whose summary is still to write: an interrupted sweep
    #: writes the summary of the jobs it finished on its way out
    sweep_dir: Path | None = None

    def note_new_folders(self, run_dir: str | Path) -> list[Path]:
        """Note which folders of ``run_dir`` and above do not exist yet: those about to be made."""
        path = Path(run_dir).absolute()
        self.made[:] = [p for p in (path, *path.parents) if not p.exists()]
        return self.made


#: This process's command line (a test calling the entry points in-process sets it anew each time).
command = Command()
