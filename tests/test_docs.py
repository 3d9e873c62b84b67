"""The documentation holds: every link of README.md, CHANGELOG.md and docs/*.md resolves (files,
and headings for #anchors), every picture the README shows is there, and the README's commands
compose as Hydra configs (``--cfg job``: nothing is run or created)."""

import re
import shlex
from pathlib import Path

import pytest

from tests.conftest import REPO, run_module

PAGES = [REPO / "README.md", REPO / "CHANGELOG.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(line.lstrip("#")) for line in page.read_text().splitlines() if line.startswith("#")}


def links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # code blocks hold no links
    return [m.group(1) for m in LINK.finditer(text)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_link_resolves(page):
    broken = []
    for link in links(page):
        if re.match(r"[a-z]+://", link):
            continue  # the web: not checked offline
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            broken.append(f"{link} (no such file)")
        elif anchor and target.suffix == ".md" and anchor not in anchors(target):
            broken.append(f"{link} (no heading #{anchor} in {target.name})")
    assert not broken, f"{page.name}: {broken}"


def test_the_readme_is_a_front_door():
    text = (REPO / "README.md").read_text()
    assert len(text.encode()) <= 15_000
    first_screen = "\n".join(text.splitlines()[:60])
    assert "make train" in first_screen and "make test" in first_screen
    pictures = re.findall(r"!\[[^\]]*\]\((docs/[^)]+\.png)\)", text)
    assert pictures and all((REPO / p).is_file() for p in pictures)
    linked = set(re.findall(r"\]\((docs/[\w.]+\.md)\)", text))
    pages = {p.relative_to(REPO).as_posix() for p in (REPO / "docs").glob("*.md") if not _is_table(p)}
    assert pages <= linked, f"docs pages the README does not link: {pages - linked}"


def _is_table(page: Path) -> bool:
    """A generated table (``make docs``), linked from the pages that discuss it, not the README."""
    return page.read_text().startswith("|") or page.name in ("threshold.md", "scale_law.md")


def readme_commands() -> list[list[str]]:
    """The README's ``python -m fmnist_scaling.<entry point>`` lines, as argument lists."""
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    commands = []
    for line in (line for block in blocks for line in block.splitlines()):
        words = shlex.split(line.split("#", 1)[0])
        if words[:2] == ["python", "-m"] and words[2] in ("fmnist_scaling.train", "fmnist_scaling.evaluate"):
            commands.append(words[2:])
    return commands


def test_the_readme_commands_compose(tmp_path):
    commands = readme_commands()
    assert len(commands) >= 4
    for module, *args in commands:
        # a placeholder (<run>) stands for a folder; a sweep (-m a,b) composes as its first job
        args = [re.sub(r"<[^>]+>", "RUN", a) for a in args if a != "-m"]
        args = [a.split(",")[0] if "=" in a else a for a in args]
        proc = run_module(module, *args, "--cfg", "job", cwd=tmp_path, timeout=120)
        assert proc.returncode == 0, f"{module} {args}: {proc.stderr[-1500:]}"
        assert proc.stdout.strip(), f"{module} {args} printed no config"
    assert not list(tmp_path.iterdir())  # printing a config creates nothing
