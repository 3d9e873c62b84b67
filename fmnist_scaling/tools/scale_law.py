"""The scale-law sweep's part of the summary (``+experiment=scale_law``): an input gain g applied
four ways (``gain_as``: on the input, through the equivalent parametrisation, and its two halves),
read against g.

Writes four tables (accuracy, dead first-layer units after training, first-layer pre-activation
std at step 0, growth of the first layer's weights in epoch 1), a line on how far the two
equivalent ways lie apart, and ``scale_law.png``.
Called by :func:`fmnist_scaling.tools.report.write_report` for any sweep that varies ``gain``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from fmnist_scaling.tools.figures import SOURCE_KEY

GAIN_KEY = "gain"
FAMILY_KEY = "gain_as"
#: The families in the order they are shown, with their labels and line styles.
FAMILIES = {
    "input": ("gain on the input", dict(linestyle="-", marker="o", linewidth=2.5, alpha=0.6)),
    "equivalent": ("init x g and lr x g² (equivalent)", dict(linestyle="--", marker="x", linewidth=1.5)),
    "init_only": ("init x g only", dict(linestyle=":", marker="s", linewidth=1.5)),
    "lr_only": ("lr x g² only", dict(linestyle="-.", marker="^", linewidth=1.5)),
}
#: (row column, title, percent) of the three panels and tables.
PANELS = (
    ("acc", "accuracy % after training ({split})", True),
    ("dead_frac", "dead first-layer ReLUs % after training", True),
    ("init_preact_std", "first-layer pre-activation std at step 0", False),
    ("weight_growth", "first-layer weight norm after epoch 1 / at step 0", False),
)


def section(keys: list[str], rows: list[dict[str, Any]], sweep_dir: Path, accuracy: str, source: str = "") -> str:
    """The markdown section, and ``scale_law.png`` in ``sweep_dir``; empty without a gain sweep.
    ``accuracy``: the row column of the headline accuracy (``val_acc`` or ``train_acc``);
    ``source``: the summary's stamp, stored in the figure."""
    if GAIN_KEY not in keys:
        return ""
    table = _by_gain(keys, rows, accuracy)
    families = [
        f
        for f in [*FAMILIES, *sorted({f for by in table.values() for f in by} - set(FAMILIES))]
        if any(f in by for by in table.values())
    ]
    gains = sorted(table, key=float)
    text = []
    split = "validation" if accuracy == "val_acc" else "training split"
    for column, title, percent in PANELS:
        text.append(f"\n{title.format(split=split)} by gain g (columns: {FAMILY_KEY}):\n")
        text.append("| g | " + " | ".join(families) + " |")
        text.append("|" + "---|" * (len(families) + 1))
        for gain in gains:
            cells = [_show(table[gain].get(family, {}).get(column, math.nan), percent) for family in families]
            text.append(f"| {gain} | " + " | ".join(cells) + " |")
    text.append(_overlay(table, gains))
    plot(table, gains, families, sweep_dir / "scale_law.png", split, source)
    return "\n".join(text) + "\n"


def _by_gain(keys: list[str], rows: list[dict[str, Any]], accuracy: str) -> dict[str, dict[str, dict[str, float]]]:
    """``{gain: {family: {column: value}}}`` (one family, ``input``, where the sweep names none)."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for row in rows:
        family = row.get(FAMILY_KEY, "input") if FAMILY_KEY in keys else "input"
        values = {"acc": row[accuracy], **{column: row[column] for column, _, _ in PANELS[1:]}}
        values |= {"acc_std": row.get(f"{accuracy}_std", math.nan), "runs": row.get("runs", 1)}
        table.setdefault(row[GAIN_KEY], {})[family] = values
    return table


def _overlay(table: dict[str, dict[str, dict[str, float]]], gains: list[str]) -> str:
    """How far apart the two equivalent ways lie: per gain, the difference of their accuracies
    against the seed spread (the larger of the two sample stds) where there are several seeds,
    and the largest difference over g."""
    pairs = [(g, table[g]["input"], table[g]["equivalent"]) for g in gains if {"input", "equivalent"} <= set(table[g])]
    pairs = [(g, a, b) for g, a, b in pairs if math.isfinite(a["acc"]) and math.isfinite(b["acc"])]
    if not pairs:
        return ""
    text = []
    if all(min(a["runs"], b["runs"]) > 1 for _, a, b in pairs):
        text.append(
            "\ninput against equivalent, per gain (accuracy difference in points; spread: the larger "
            "sample std of the two, over their seeds):\n"
        )
        text += [
            "| g | runs | input | equivalent | difference | spread | difference / spread |",
            "|---|---|---|---|---|---|---|",
        ]
        for g, a, b in pairs:
            diff, spread = 100 * abs(a["acc"] - b["acc"]), 100 * max(a["acc_std"], b["acc_std"])
            ratio = f"{diff / spread:.2f}" if spread > 0 else ("0" if diff == 0 else "inf")
            text.append(
                f"| {g} | {min(a['runs'], b['runs'])} | {100 * a['acc']:.1f} | {100 * b['acc']:.1f} | "
                f"{diff:.2f} | {spread:.2f} | {ratio} |"
            )
    gain, a, b = max(pairs, key=lambda p: abs(p[1]["acc"] - p[2]["acc"]))
    text.append(
        f"\ninput against equivalent: accuracies at most {100 * abs(a['acc'] - b['acc']):.1f} points apart "
        f"(at g = {gain}: {100 * a['acc']:.1f}% and {100 * b['acc']:.1f}%), over {len(pairs)} gains.\n"
    )
    return "\n".join(text)


def _show(value: float, percent: bool) -> str:
    if not math.isfinite(value):
        return "-"
    return f"{100 * value:.1f}" if percent else f"{value:.3g}"


def plot(
    table: dict[str, dict[str, dict[str, float]]],
    gains: list[str],
    families: list[str],
    path: Path,
    split: str,
    source: str = "",
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PANELS), figsize=(20, 4.5))
    x = [float(g) for g in gains]
    for ax, (column, title, percent) in zip(axes, PANELS):
        values = [table[g].get(f, {}).get(column, math.nan) for g in gains for f in families]
        if not any(math.isfinite(v) and v > 0 for v in values):
            ax.set_axis_off()  # nothing measured (records without this diagnostic)
            continue
        for family in families:
            label, style = FAMILIES.get(family, (family, dict(marker=".")))
            y = [100 * v if percent else v for v in (table[g].get(family, {}).get(column, math.nan) for g in gains)]
            ax.plot(x, y, label=label, **style)
        ax.set(xscale="log", xlabel="gain g (255: raw pixels)", title=title.format(split=split))
        if not percent:
            ax.set_yscale("log")
        else:
            ax.set_ylim(-3, 103)
        ax.axvline(255, color="grey", linewidth=0.8, linestyle=":")
        ax.grid(alpha=0.3)
    axes[0].axhline(10, color="grey", linewidth=0.8, linestyle=":")
    axes[0].legend(fontsize=8)
    fig.suptitle(
        "Input gain g on the MLP at lr 1e-2: on the input, through the equivalent parametrisation, and its halves"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata={SOURCE_KEY: source})
    plt.close(fig)
