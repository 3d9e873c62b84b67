"""The libraries' releases the code was written for (:mod:`fmnist_scaling.utils.versions`): another
one is named in one line, with the fix, before any of their own warnings."""

from __future__ import annotations

import pytest

from fmnist_scaling.utils import versions
from tests.conftest import run_module


def test_the_installed_releases_are_the_ones_written_for():
    assert versions.wrong_version() is None


@pytest.mark.parametrize(
    "installed, said",
    [
        ("2.4.0", "omegaconf 2.4.0 is installed, and fmnist_scaling is written for omegaconf 2.3.x"),
        ("2.30.1", "omegaconf 2.30.1 is installed"),  # a prefix is not a release
        (None, "omegaconf is not installed"),
    ],
)
def test_another_release_is_named_with_the_fix(monkeypatch, installed, said):
    real = versions.version

    def fake(name):
        if name != "omegaconf":
            return real(name)
        if installed is None:
            raise versions.PackageNotFoundError(name)
        return installed

    monkeypatch.setattr(versions, "version", fake)
    problem = versions.wrong_version()
    assert problem.startswith(said) and "pip install" in problem


def test_a_command_under_another_release_stops_at_once_naming_it(tmp_path):
    # a distribution's metadata found first on the path: what `pip install omegaconf==2.4.0` leaves
    info = tmp_path / "site" / "omegaconf-2.4.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: omegaconf\nVersion: 2.4.0\n")
    proc = run_module("fmnist_scaling.train", "--help", cwd=tmp_path, env={"PYTHONPATH": str(tmp_path / "site")})
    assert proc.returncode == 1
    assert proc.stderr.strip() == (  # one line, no traceback
        "error: omegaconf 2.4.0 is installed, and fmnist_scaling is written for omegaconf 2.3.x: "
        "pip install 'omegaconf==2.3.*' (or pip install -e . in a fresh environment, which pins it)"
    )
