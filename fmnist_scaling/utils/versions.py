"""The versions of the libraries this project's code was written for, checked before a command
runs: another minor version of OmegaConf, Hydra or Lightning changes behaviour the project relies
on (OmegaConf 2.4 gave pages of deprecation warnings, then an AssertionError that named no
version). ``pyproject.toml`` pins each exactly; this says so in one line where they differ."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

#: Distribution name -> the major.minor release the code was written and tested against.
WRITTEN_FOR = {"omegaconf": "2.3", "hydra-core": "1.3", "lightning": "2.6"}


def wrong_version() -> str | None:
    """One line naming the first library installed at another release than :data:`WRITTEN_FOR`, or None."""
    for name, release in WRITTEN_FOR.items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            return f"{name} is not installed: pip install -e . installs the versions this project pins"
        if installed != release and not installed.startswith(release + "."):
            return (
                f"{name} {installed} is installed, and fmnist_scaling is written for {name} {release}.x: "
                f"pip install '{name}=={release}.*' (or pip install -e . in a fresh environment, which pins it)"
            )
    return None
