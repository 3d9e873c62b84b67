"""Every number that the README and the science page print is generated: by ``make docs`` (the
tables in ``docs/``) or by this tool, the last step of ``make docs``, which writes ``docs/facts.md``:
the study's settings, read from its config; the benchmark's figures, read from the record that
``make bench`` wrote (``docs/bench_cpu.json``); and the figures that the prose derives from the
tables (ratios, spans, counts), each computed here from the table it names.

    python -m fmnist_scaling.tools.facts                       # (re)write docs/facts.md
    python -m fmnist_scaling.tools.facts --check README.md docs/science.md docs/sharpness.md

``--check`` lists every number of a page's prose (code, links and HTML comments aside) that no
generated file holds to the precision printed: "85.6" is found in a table that prints 85.6 or
85.63, "700" only where 699.5 to 700.5 is. It exits 1 when there is one: a number typed by hand.
The threshold's pages (:data:`THRESHOLD_PAGES`) may also quote the predictions as committed
(:data:`RECORDS`); quoted lines (``>``) are quotes, not checked.
"""

from __future__ import annotations

import argparse
import bisect
import math
import re
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
FACTS = DOCS / "facts.md"
#: The files ``make docs`` writes into docs/ (and the benchmark's): where a printed number may come from.
GENERATED = (
    "article.md",
    "study.md",
    "lr_grid.md",
    "scale_law.md",
    "architectures.md",
    "overlay.md",
    "sigmoid.md",
    "article_speed.md",
    "sigmoid_speed.md",
    "threshold.md",
    "threshold_variants.md",
    "sharpness_trajectories.md",
    "digits_study.md",
    "digits_threshold.md",
    "threshold_networks.md",
    "facts.md",
)
#: The benchmark record the README quotes (``make bench``, written with ``--out``).
BENCH = "bench/bench_cpu_5epochs_s9_reps5.json"
#: A number as prose prints it: 60,000; 85.6; 1e-2; 7.17e6 (a digit glued to a word is a name: fc1, tab10).
NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+(?![\d.])|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(?![\w])")
#: What is not prose: fenced code, inline code, link targets, HTML comments, quotes, a citation's year.
NOT_PROSE = re.compile(r"```.*?```|`[^`\n]*`|\]\([^)]*\)|<!--.*?-->|^>[^\n]*|et al\., \d{4}", re.S | re.M)


def numbers(text: str) -> Iterator[tuple[str, float, float]]:
    """Each number of ``text``: its text, its value and half a unit of its last printed digit."""
    for match in NUMBER.finditer(text):
        token = match.group(1)
        plain = token.replace(",", "")
        mantissa, _, exponent = plain.lower().partition("e")
        decimals = len(mantissa.partition(".")[2])
        yield token, float(plain), 0.5 * 10.0 ** (int(exponent or 0) - decimals)


def prose(text: str) -> str:
    """``text`` with what is not prose blanked, its lines kept."""
    return NOT_PROSE.sub(lambda m: "\n" * m.group(0).count("\n") or " ", text)


class Sources:
    """The numbers of the generated files, sorted, to look a printed number up."""

    def __init__(self, files: list[Path]) -> None:
        self.values = sorted(value for f in files for _, value, _ in numbers(f.read_text()))

    def holds(self, value: float, half_unit: float) -> bool:
        at = bisect.bisect_left(self.values, value - half_unit * (1 + 1e-9))
        return at < len(self.values) and self.values[at] <= value + half_unit * (1 + 1e-9)


def unsourced(page: Path, sources: Sources) -> list[str]:
    """``line: number`` for every number of ``page``'s prose that no generated file holds."""
    text = prose(page.read_text())
    found = []
    for number, line in ((n, text.count("\n", 0, m.start()) + 1) for m in NUMBER.finditer(text) for n in [m.group(1)]):
        _, value, half = next(numbers(number))
        if not sources.holds(value, half):
            found.append(f"{page.name}:{line}: {number}")
    return found


#: Predictions as committed, before their outcome: the pages that test them quote their bands.
RECORDS = (
    "sharpness_prediction.md",
    "digits_prediction.md",
    "threshold_offset_prediction.md",
    "threshold_whitened_prediction.md",
    "threshold_networks_prediction.md",
)
#: The pages held to the generated files: the answer, and (with the predictions) the threshold's pages.
ANSWER = (REPO / "README.md", DOCS / "science.md")
THRESHOLD_PAGES = tuple(DOCS / n for n in ("sharpness.md", "threshold_offset.md", "threshold_whitened.md", "digits.md"))


def generated_sources(records: bool = False) -> Sources:
    """The generated files' numbers; ``records``: and the committed predictions'."""
    names = [*GENERATED, *(RECORDS if records else ())]
    return Sources([DOCS / name for name in names if (DOCS / name).is_file()])


# ---- the facts: each a name, a value as printed, and where it comes from


def table(name: str, index: int = 0) -> list[dict[str, str]]:
    """The ``index``-th markdown table of ``docs/<name>``, as rows of header -> cell."""
    tables, current = [], []
    for line in (DOCS / name).read_text().splitlines() + [""]:
        if line.startswith("|"):
            current.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif current:
            tables.append(current)
            current = []
    header, _, *rows = tables[index]
    return [dict(zip(header, row)) for row in rows]


def value(cell: str) -> float:
    """The first number of a cell: the mean of "85.6 ± 0.2", the median of "0.75 (0.75, ...)"."""
    return next(numbers(cell))[1]


def row(rows: list[dict[str, str]], key: str, name: str) -> dict[str, str]:
    return next(r for r in rows if r[key] == name)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.3g}"


def settings() -> list[tuple[str, str, str]]:
    """The reference study's settings, from its config (conf/) and its dataset class."""
    from fmnist_scaling.data.datasets import dataset_class
    from fmnist_scaling.models.diagnostics import SATURATION_MARGIN
    from fmnist_scaling.run.config_tree import compose
    from fmnist_scaling.run.records import COLLAPSE_FACTOR
    from fmnist_scaling.tools import sharpness, threshold

    cfg = compose("train", hydra=True)
    data = dataset_class(cfg.data.dataset._target_)
    seeds = str(cfg.hydra.sweeper.params.seed).split(",")
    source = "conf/train.yaml and its defaults"
    python = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    return [
        ("Python, at least", python.removeprefix(">="), "pyproject.toml"),
        ("pixels per image (the MLP's input)", f"{math.prod(data.image_shape)}", f"{data.__name__}.image_shape"),
        ("hidden units", f"{cfg.model.net.hidden[0]}", source),
        ("classes", f"{len(data.classes)}", f"{data.__name__}.classes"),
        ("SGD learning rate", f"{cfg.model.optimizer.lr}", source),
        ("batch size", f"{cfg.data.batch_size}", source),
        ("epochs", f"{cfg.trainer.max_epochs}", source),
        ("training images", f"{data.train_size:,}", f"{data.__name__}.train_size"),
        ("test images", f"{data.test_size:,}", f"{data.__name__}.test_size"),
        ("validation images (the study)", f"{cfg.data.val_size:,}", source),
        ("training images of the study", f"{data.train_size - cfg.data.val_size:,}", "train_size - val_size"),
        ("probe batch (training images)", f"{cfg.data.probe_size:,}", source),
        ("the pixels' largest value", f"{data.max_value:g}", f"{data.__name__}.max_value"),
        ("raw pixels' learning-rate factor on the first layer", f"{data.max_value**2:,.0f}", "max_value²"),
        (
            "raw pixels' first-layer weight lr at the study's lr",
            f"{cfg.model.optimizer.lr * data.max_value**2:.0f}",
            "lr × max_value²",
        ),
        ("seeds of a sweep", f"{len(seeds)}", "hydra.sweeper.params.seed"),
        ("chance accuracy, %", f"{100 / len(data.classes):g}", "1 / classes"),
        ("collapsed: accuracy under, %", f"{100 * COLLAPSE_FACTOR / len(data.classes):g}", "records.COLLAPSE_FACTOR"),
        ("saturated sigmoid: output under", f"{SATURATION_MARGIN:g}", "models/diagnostics.py"),
        ("saturated sigmoid: or over", f"{1 - SATURATION_MARGIN:g}", "1 - SATURATION_MARGIN"),
        ("threshold grid: lrs per decade", f"{threshold.STEPS_PER_DECADE}", "tools/threshold.py"),
        ("threshold grid: one step, a factor", f"{threshold.grid_lr(1):.3g}", "10^(1 / lrs per decade)"),
        ("broken: dead units over, %", f"{100 * threshold.DEAD_LIMIT:g}", "tools/threshold.py"),
        ("sharpness: training inputs", f"{sharpness.SAMPLES:,}", "tools/sharpness.py"),
        ("ln 10: the loss of a uniform guess", f"{math.log(len(data.classes)):.3g}", "log(classes)"),
    ]


def digits() -> list[tuple[str, str, str]]:
    """The second dataset's sizes, from its class and its config (conf/data/digits.yaml)."""
    from fmnist_scaling.data.datasets import dataset_class
    from fmnist_scaling.run.config_tree import compose

    cfg = compose("train", ["data=digits"])
    data = dataset_class(cfg.data.dataset._target_)
    train, test, val = data.train_size, data.test_size, cfg.data.val_size
    return [
        ("digits: images in all", f"{train + test:,}", f"{data.__name__}.train_size + test_size"),
        ("digits: training images of the study", f"{train - val:,}", "train_size - val_size"),
        ("digits: validation images", f"{val}", "conf/data/digits.yaml"),
        ("digits: test images", f"{test}", f"{data.__name__}.test_size"),
        ("digits: the pixels' largest value", f"{data.max_value:g}", f"{data.__name__}.max_value"),
    ]


def bench() -> list[tuple[str, str, str]]:
    """The benchmark's figures that the README quotes, from :data:`BENCH`."""
    import json

    record = json.loads((DOCS / BENCH).read_text())
    project = record["median"]["project"]["wall_s"]
    return [
        ("benchmark: repetitions of each run", f"{record['reps']}", BENCH),
        (f"benchmark: a {record['epochs']}-epoch run, median wall s", f"{project:.1f}", BENCH),
        ("benchmark: its time over a plain in-memory loop's", f"{record['ratios']['project/floor']:.2f}", BENCH),
        ("benchmark: its time over the article's loop's", f"{record['ratios']['project/article']:.2f}", BENCH),
    ]


def derived() -> list[tuple[str, str, str]]:
    """What the prose computes from the tables."""
    article, probe = table("article.md"), table("article.md", 1)
    none, scaled = row(probe, "scaling", "none"), row(probe, "scaling", "max")
    grad = "first-layer weight gradient norm, step 0"
    preact = "pre-act std at step 0"
    study = table("study.md")
    trained = [r for r in study if r["scaling"] != "none"]
    test = [value(r["test acc %"]) for r in trained]
    divided = value(row(study, "scaling", "max")["test acc %"])
    gains = [value(row(study, "scaling", m)["test acc %"]) - divided for m in ("centered", "standard", "per_pixel")]
    threshold = table("threshold.md")
    return [
        (
            "first-layer gradient at step 0, raw pixels over / 255 (article)",
            ratio(value(none[grad]), value(scaled[grad])),
            "article.md, second table",
        ),
        (
            "the same, over the input gain 255",
            f"{value(none[grad]) / value(scaled[grad]) / 255:.3g}",
            "article.md, second table",
        ),
        (
            "first-layer pre-activation std at step 0, raw pixels over / 255 (article)",
            ratio(value(row(article, "scaling", "none")[preact]), value(row(article, "scaling", "max")[preact])),
            "article.md",
        ),
        ("test accuracy of the modes that train, lowest % (study)", f"{min(test):.1f}", "study.md"),
        ("test accuracy of the modes that train, highest % (study)", f"{max(test):.1f}", "study.md"),
        (
            "centring or standardising: test accuracy points over / 255, fewest (study)",
            f"{min(gains):.1f}",
            "study.md: centered, standard, per_pixel against max",
        ),
        (
            "centring or standardising: test accuracy points over / 255, most (study)",
            f"{max(gains):.1f}",
            "study.md: centered, standard, per_pixel against max",
        ),
        ("threshold cases", f"{len(threshold)}", "threshold.md"),
        (
            "threshold cases whose seeds agree on one grid value",
            f"{sum(len(set(numbers_in(r['critical lr (median; per seed)'])[1:])) == 1 for r in threshold)}",
            "threshold.md",
        ),
    ]


def numbers_in(cell: str) -> list[float]:
    return [v for _, v, _ in numbers(cell)]


def section(name: str, heading: str) -> list[dict[str, str]]:
    """The table under ``## <heading> ...`` of ``docs/<name>`` (threshold_variants.md: one per run)."""
    text = (DOCS / name).read_text()
    start = text.index(f"## {heading} ")
    end = text.find("\n## ", start + 1)
    rows = [line for line in text[start : end if end > 0 else None].splitlines() if line.startswith("|")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in r.strip("|").split("|")))) for r in rows[2:]]


def at_threshold(r: dict[str, str]) -> dict[str, float]:
    """λ, S₀, the critical lr and the three products of one threshold row, from its printed values."""
    lam, s0 = value(r["λ of E[x xᵀ]"]), value(r["sharpness S₀ at init (median)"])
    from fmnist_scaling.tools.threshold import on_grid

    lr = on_grid(value(r["critical lr (median; per seed)"]))  # the grid's value, as the tool computed with
    return {"λ": lam, "S₀": s0, "lr": lr, "lr · λ": lr * lam, "lr · √λ": lr * math.sqrt(lam), "lr · S₀": lr * s0}


def threshold_cases(variant: str = "") -> dict[str, dict[str, float]]:
    """The Fashion-MNIST cases at unit input size and the gains, by name: threshold.md's, the offsets'
    and the whitened inputs' (``variant`` "loss": under ``--loss-limit``, where measured)."""
    main = table("threshold.md") if not variant else section("threshold_variants.md", "threshold_loss")
    cases = {r["case"]: at_threshold(r) for r in main}
    extra = {"whitened": "whitened", **{f"offset {o}": f"offset_{o}" for o in ("0.5", "1", "3")}}
    for name, run in extra.items():
        heading = f"threshold_{variant + '_' if variant else ''}{run}"
        if f"## {heading} " in (DOCS / "threshold_variants.md").read_text():
            cases[name] = at_threshold(section("threshold_variants.md", heading)[0])
    return cases


MODES = ["max", "minmax", "per_pixel", "centered", "standard"]
GAINS = ["max, gain 4", "max, gain 16", "max, gain 64"]
#: Sets of cases whose spread at the threshold the sharpness page compares.
FITTED = ["max", "minmax", "per_pixel", "centered", "offset 0.5", "offset 1", "offset 3"]
CASE_SETS = {
    "the 7 cases the S₀ band was fitted on (4 modes, 3 offsets)": FITTED,
    "those 7 and `standard`": [*FITTED, "standard"],
    "those 7 and the whitened inputs": [*FITTED, "whitened"],
    "those 7, `standard` and the whitened inputs": [*FITTED, "standard", "whitened"],
    "`max` and the 3 offsets": ["max", "offset 0.5", "offset 1", "offset 3"],
    "the 5 scaling modes at unit size": ["max", "minmax", "per_pixel", "centered", "standard"],
    "the same without `standard`": ["max", "minmax", "per_pixel", "centered"],
    "the 7 cases measured both ways (5 modes, offset 1, whitened)": [*MODES, "offset 1", "whitened"],
    "those 7 without `standard`": [m for m in MODES if m != "standard"] + ["offset 1", "whitened"],
    "every case of threshold.md (6 modes, 3 gains)": [*MODES, "none", *GAINS],
    "the same but `standard`": [m for m in MODES if m != "standard"] + ["none", *GAINS],
}
#: The critical lr itself, and times each statistic: does a statistic make it flatter?
PRODUCTS = ("lr", "lr · λ", "lr · √λ", "lr · S₀")


def spreads() -> list[tuple[str, ...]]:
    """Largest over smallest of each product at the threshold, per set of cases, and its range."""
    rows = []
    for variant, label in (("", "threshold's definition"), ("loss", "with --loss-limit 2.303")):
        cases = threshold_cases(variant)
        for name, members in CASE_SETS.items():
            if not all(m in cases for m in members):
                continue
            cells = []
            for product in PRODUCTS:
                values = [cases[m][product] for m in members]
                cells.append(f"{max(values) / min(values):.3g}× ({min(values):.3g} .. {max(values):.3g})")
            rows.append((name, label, str(len(members)), *cells))
    return rows


def gain_family() -> list[tuple[str, str, str]]:
    """The critical lr along the input gain on `max` (g = 255: `none`), times g, and λ, S₀ against g = 1."""
    cases = threshold_cases()
    gains = {1: "max", 4: "max, gain 4", 16: "max, gain 16", 64: "max, gain 64", 255: "none"}
    scaled = [cases[name]["lr"] * g for g, name in gains.items()]
    base = cases["max"]
    return [
        ("critical lr × g for g = 1, 4, 16, 64, 255", ", ".join(f"{v:.3g}" for v in scaled), "threshold.md"),
        ("its spread, largest over smallest", f"{max(scaled) / min(scaled):.3g}", "threshold.md"),
        (
            "S₀ over `max`'s, for g = 4, 16, 64, 255",
            ", ".join(f"{cases[n]['S₀'] / base['S₀']:,.0f}" for g, n in gains.items() if g > 1),
            "threshold.md",
        ),
        (
            "λ over `max`'s, for g = 4, 16, 64, 255",
            ", ".join(f"{cases[n]['λ'] / base['λ']:,.0f}" for g, n in gains.items() if g > 1),
            "threshold.md",
        ),
        (
            "lr · S₀ / 2 at `none`: the critical lr over the init's bound 2 / S₀",
            f"{cases['none']['lr · S₀'] / 2:.0f}",
            "threshold.md",
        ),
    ]


#: The offsets' predicted bands of the critical lr, as committed in threshold_offset_prediction.md (0eacb15).
OFFSET_BANDS = {"offset 0.5": (0.243, 0.391), "offset 1": (0.153, 0.246), "offset 3": (0.0607, 0.0976)}


def offsets() -> list[tuple[str, str, str]]:
    """How far each offset's measured critical lr lies below its committed band."""
    cases = threshold_cases()
    return [
        (f"{name}: the band's low end over the critical lr", f"{low / cases[name]['lr']:.2g}", "threshold_variants.md")
        for name, (low, _) in OFFSET_BANDS.items()
    ]


#: The networks of threshold_networks_prediction.md (commit 4dd2eaa), and the gain R is predicted
#: to be within two grid steps of: 255 (the input gain of `none` over `max`), 1 behind an input BatchNorm.
NETWORKS = {"hidden250": 255, "hidden2000": 255, "two_layers": 255, "mlp_he": 255, "cnn": 255, "mlp_bn": 1}


def networks() -> list[tuple[str, str, str]]:
    """The prediction on other networks, scored: R = critical lr (max) / critical lr (none)
    against its band, two grid steps either side of its gain."""
    from fmnist_scaling.tools.threshold import grid_lr

    if not (DOCS / "threshold_networks.md").is_file():
        return []
    reference = threshold_cases()
    rows = [("R on the article's MLP", f"{reference['max']['lr'] / reference['none']['lr']:.3g}", "threshold.md")]
    outside = []
    for name, gain in NETWORKS.items():
        cases = {r["case"]: at_threshold(r) for r in section("threshold_networks.md", name)}
        ratio = cases["max"]["lr"] / cases["none"]["lr"]
        low, high = gain / grid_lr(2), gain * grid_lr(2)
        inside = low <= ratio <= high
        outside += [] if inside else [name]
        rows.append(
            (
                f"R on {name}: critical lr max / none (band {low:.3g} .. {high:.3g})",
                f"{ratio:.3g}: {'inside' if inside else 'outside'}",
                "threshold_networks.md",
            )
        )
    rows.append(("networks outside their band", f"{len(outside)} of {len(NETWORKS)}", "threshold_networks.md"))
    widths = re.findall(r"threshold_net_\w+ 'model\.net\.hidden=\[(\d+)\]'", (REPO / "Makefile").read_text())
    rows.append(("widths of the one-layer MLPs measured", ", ".join(widths), "Makefile, docs: the commands"))
    return rows


FACTS_OF: tuple[Callable[[], list[tuple[str, str, str]]], ...] = (
    settings,
    digits,
    bench,
    derived,
    gain_family,
    offsets,
    networks,
)


def facts_markdown() -> str:
    lines = [
        "<!-- generated by make docs: python -m fmnist_scaling.tools.facts -->",
        "",
        "| fact | value | from |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {shown} | {source} |" for make in FACTS_OF for name, shown, source in make()]
    lines += [
        "",
        "## Spreads at the threshold",
        "",
        "Largest over smallest of the critical lr (`lr`) and of its product with each statistic, over a set of "
        "cases (threshold.md, and the offsets and whitened inputs of threshold_variants.md); the range in "
        "brackets. One grid step is a factor 1.33, two 1.78.",
        "",
        "| cases | definition of broken | n | " + " | ".join(PRODUCTS) + " |",
        "|---|---|---|" + "---|" * len(PRODUCTS),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in spreads()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="python -m fmnist_scaling.tools.facts")
    parser.add_argument("--check", nargs="+", type=Path, metavar="PAGE", help="list the pages' hand-typed numbers")
    args = parser.parse_args(argv)
    if not args.check:
        FACTS.write_text(facts_markdown())
        print(f"written: {FACTS.relative_to(REPO)}")
        return 0
    records = generated_sources(records=True)
    missing = [
        n
        for page in args.check
        for n in unsourced(page, records if page.resolve() in THRESHOLD_PAGES else generated_sources())
    ]
    for line in missing:
        print(f"{line} (in no generated file)")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
