"""Checkpoint writes that never leave a truncated file.

Lightning's ``TorchCheckpointIO`` writes through an fsspec transaction whose temporary file lies
in the system's temporary folder; committing moves it, which across file systems is a copy, and a
full disk then leaves a truncated checkpoint under the real name, one that a resume would try
to load. Here the file is written beside its target and renamed into place (atomic on one file
system): a full disk, a kill or a crash leaves the previous checkpoint and nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from fmnist_scaling.files import atomic_file


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` with an atomic, same-folder save (local paths; others as Lightning)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(target) as f:
            torch.save(checkpoint, f)
