"""The answer's numbers are generated (:mod:`fmnist_scaling.tools.facts`): every number in the prose
of README.md and docs/science.md is held by a file that ``make docs`` writes (the threshold's pages:
or by a prediction as committed), docs/facts.md is what its tables give now, and every figure in
docs/ was drawn from the results of the table beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from fmnist_scaling.tools import facts
from fmnist_scaling.tools.figures import figure_source


@pytest.mark.parametrize("page", facts.ANSWER, ids=lambda p: p.name)
def test_every_number_in_the_prose_is_generated(page):
    missing = facts.unsourced(page, facts.generated_sources())
    assert not missing, f"numbers in no generated file (python -m fmnist_scaling.tools.facts --check): {missing}"


@pytest.mark.parametrize("page", facts.THRESHOLD_PAGES, ids=lambda p: p.name)
def test_the_threshold_pages_quote_generated_numbers_or_the_predictions_as_committed(page):
    missing = facts.unsourced(page, facts.generated_sources(records=True))
    assert not missing, f"numbers in no generated file nor committed prediction: {missing}"


def test_a_hand_typed_figure_fails_the_check(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "Raw pixels: 60,000 images, lr 1e-2, a gradient norm of 506 against 0.71.\n"
        "```bash\npython -m x lr=4242\n```\n`seed=4343` [a link](docs/4444.md) <!-- 4545 --> fc1, tab10\n"
        "A test accuracy of 83.77 %, and 83.8.\n"
    )
    sources = facts.Sources([_write(tmp_path / "table.md", "| 60000 | 0.01 | 83.8 |\n")])
    assert facts.unsourced(page, sources) == ["page.md:1: 506", "page.md:1: 0.71", "page.md:6: 83.77"]
    # and the README with one such sentence added fails too
    readme = _write(tmp_path / "README.md", facts.ANSWER[0].read_text() + "\nThe gradient norm is 506.25 at step 0.\n")
    assert [m.split(": ")[-1] for m in facts.unsourced(readme, facts.generated_sources())] == ["506.25"]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, value, half_unit",
    [("60,000", 60000, 0.5), ("1e-2", 0.01, 0.005), ("7.17e6", 7.17e6, 5e3), ("0.562", 0.562, 5e-4), ("700", 700, 0.5)],
)
def test_a_number_is_read_as_printed_and_matched_to_its_last_digit(text, value, half_unit):
    ((token, read, half),) = list(facts.numbers(f"about {text} here"))
    assert (token, read, half) == (text, pytest.approx(value), pytest.approx(half_unit))
    sources = facts.Sources([])
    sources.values = [value + 0.9 * half_unit]
    assert sources.holds(read, half)
    sources.values = [value + 1.1 * half_unit]
    assert not sources.holds(read, half)


def test_the_facts_page_is_what_its_tables_and_config_give_now():
    assert facts.FACTS.read_text() == facts.facts_markdown(), "stale: python -m fmnist_scaling.tools.facts"


def test_every_generated_file_is_written_by_make():
    makefile = (facts.REPO / "Makefile").read_text()
    assert all(Path(name).stem in makefile for name in facts.GENERATED)


@pytest.mark.parametrize("figure", sorted(facts.DOCS.glob("*.png")), ids=lambda p: p.name)
def test_every_figure_was_drawn_from_the_results_of_the_table_beside_it(figure):
    source = figure_source(figure)
    table = facts.DOCS / f"{figure.stem.removesuffix('_panels')}.md"
    assert source, f"{figure.name} carries no results stamp: redraw it with make docs"
    assert f"<!-- {source} -->" in table.read_text(), f"{figure.name} and {table.name} come from different runs"
