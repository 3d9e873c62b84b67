"""The sweep's curves figure (``curves.png``): loss and accuracy per epoch, drawn so that any
sweep reads at a glance.

One colour per value of one key (``scaling`` where the sweep varies it: each scaling mode has
the same colour in every figure of the project, :data:`MODE_COLORS`), one panel per value of the
other keys (the network, the optimizer and lr, the gain's family), the same axes in every panel.
Solid: the training split after each epoch; dashed: validation. Lines are means over seeds, the
band spans min to max.
"""

from __future__ import annotations

import math
import statistics
from itertools import product
from pathlib import Path
from typing import Any

from fmnist_scaling.data import splits

#: The colour of each scaling mode, in every figure (matplotlib's tab10 names); a mode of your own
#: takes the next free colour of :data:`_SPARE` by its name.
MODE_COLORS = {
    "none": "tab:red",
    "max": "tab:blue",
    "minmax": "tab:cyan",
    "standard": "tab:green",
    "per_pixel": "tab:purple",
    "centered": "tab:orange",
}
_SPARE = ("tab:brown", "tab:pink", "tab:olive", "tab:gray", "black", "gold")
#: Panels across before a new row starts.
MAX_COLUMNS = 4


def colour_key(keys: list[str]) -> str | None:
    """The key whose values the lines' colours tell apart: ``scaling`` if swept, else the last key."""
    return "scaling" if "scaling" in keys else (keys[-1] if keys else None)


def colours(key: str | None, values: list[str]) -> dict[str, Any]:
    """A colour per value: the modes' own for ``scaling``; a sequential map for numbers; else Dark2."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    if key == "scaling":
        spare = iter(c for c in _SPARE if c not in MODE_COLORS.values())
        return {v: MODE_COLORS.get(v) or next(spare, "black") for v in values}
    if values and all(_is_number(v) for v in values):
        ordered = sorted(values, key=float)
        cmap = plt.cm.viridis
        return {v: cmap(i / max(1, len(ordered) - 1)) for i, v in enumerate(ordered)}
    # not tab10: its red, blue and green are the modes' none, max and standard
    dark2 = plt.cm.Dark2
    assert isinstance(dark2, ListedColormap) and isinstance(dark2.colors, tuple)  # 8 RGB tuples
    return {v: dark2.colors[i % 8] for i, v in enumerate(sorted(values))}


#: The PNG text key that names the results a figure was drawn from (the summary's stamp).
SOURCE_KEY = "Source"


def figure_source(path: Path) -> str | None:
    """The stamp a figure of this project carries (:data:`SOURCE_KEY`), None for another PNG
    (or an image that is not a PNG)."""
    from PIL import Image
    from PIL.PngImagePlugin import PngImageFile

    with Image.open(path) as image:
        return image.text.get(SOURCE_KEY) if isinstance(image, PngImageFile) else None


def plot_curves(keys: list[str], rows: list[dict[str, Any]], path: Path, title: str, source: str = "") -> None:
    """Draw ``rows`` (the summary's, with their ``curves``) into ``path``; ``title`` names the sweep,
    ``source`` the results (stored in the PNG, :func:`figure_source`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by = colour_key(keys)
    facet_keys = [k for k in keys if k != by]
    facet_values = [sorted({str(r[k]) for r in rows}, key=_order) for k in facet_keys]
    facets = [dict(zip(facet_keys, combo)) for combo in product(*facet_values)] or [{}]
    facets = [f for f in facets if any(_in_facet(r, f) for r in rows)]
    palette = colours(by, sorted({str(r[by]) for r in rows}, key=_order) if by else [])
    metrics = [("acc", "accuracy (%)", 100)] + (
        [("loss", "cross-entropy loss", 1)] if len(facets) <= MAX_COLUMNS else []
    )
    single = len(facets) == 1  # one panel each for accuracy and loss, side by side
    columns = len(metrics) if single else min(MAX_COLUMNS, len(facets))
    panel_rows = 1 if single else math.ceil(len(facets) / columns)
    grid_rows = 1 if single else panel_rows * len(metrics)
    fig, axes = plt.subplots(
        grid_rows, columns, figsize=(4.6 * columns + 1.5, 3.6) if single else (3.6 * columns + 1.5, 2.9 * grid_rows),
        sharex=True, sharey=False if single else "row", squeeze=False,
    )  # fmt: skip
    for i, facet in enumerate(facets):
        for m, (metric, label, scale) in enumerate(metrics):
            ax = axes[0][m] if single else axes[(i // columns) * len(metrics) + m][i % columns]
            for row in (r for r in rows if _in_facet(r, facet)):
                colour = palette.get(str(row[by])) if by else "tab:blue"
                _draw(ax, row, metric, scale, colour)
            ax.set(ylabel=label, yscale="log" if metric == "loss" else "linear")
            if metric == "acc":
                ax.set_ylim(0, 100)
                ax.axhline(10, color="grey", linewidth=0.8, linestyle=":")  # chance
                ax.set_title(", ".join(f"{k}={v}" for k, v in facet.items()) or "accuracy", fontsize=10)
            elif single:
                ax.set_title("loss", fontsize=10)
            ax.grid(alpha=0.3)
            ax.xaxis.get_major_locator().set_params(integer=True)
    for ax in axes.flat[len(facets) * len(metrics) :] if panel_rows * columns > len(facets) else []:
        ax.set_visible(False)
    for column in range(columns):  # the lowest panel of each column shown: its epochs
        ax = next(a for a in axes[:, column][::-1] if a.get_visible())
        ax.set_xlabel("epoch")
        ax.xaxis.set_tick_params(labelbottom=True)
    handles = [plt.Line2D([], [], color=c, linewidth=2, label=f"{by}={v}") for v, c in palette.items()]
    handles += [
        plt.Line2D([], [], color="black", linestyle="-", label="train (after each epoch)"),
        plt.Line2D([], [], color="black", linestyle="--", label="validation"),
    ]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=9, frameon=False)
    shown = " and ".join({"acc": "accuracy", "loss": "loss"}[metric] for metric, _, _ in metrics)
    fig.suptitle(f"{title}: {shown} per epoch, mean over seeds (band: min to max); dotted: chance")
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata={SOURCE_KEY: source})
    plt.close(fig)


def _draw(ax: Any, row: dict[str, Any], metric: str, scale: float, colour: Any) -> None:
    curves = row["curves"]
    for split, style in ((splits.TRAIN_FULL, "-"), (splits.TRAIN, "-"), (splits.VAL, "--")):
        if split == splits.TRAIN and any(splits.acc(splits.TRAIN_FULL) in h for c in curves for h in c):
            continue  # the after-epoch pass is the article's number; the running one would repeat it
        series = by_epoch(curves, f"{split}/{metric}")
        if not series:
            continue
        epochs = sorted(series)
        ax.plot(epochs, [scale * statistics.fmean(series[e]) for e in epochs], style, color=colour)
        if any(len(series[e]) > 1 for e in epochs):
            low, high = [scale * min(series[e]) for e in epochs], [scale * max(series[e]) for e in epochs]
            ax.fill_between(epochs, low, high, color=colour, alpha=0.15, linewidth=0)


def by_epoch(curves: list[list[dict[str, float]]], key: str) -> dict[float, list[float]]:
    """``key``'s finite values per epoch over the runs' histories."""
    series: dict[float, list[float]] = {}
    for history in curves:
        for entry in history:
            if key in entry and math.isfinite(entry[key]):
                series.setdefault(entry["epoch"], []).append(entry[key])
    return series


def _in_facet(row: dict[str, Any], facet: dict[str, str]) -> bool:
    return all(str(row[k]) == v for k, v in facet.items())


def _is_number(value: str) -> bool:
    try:
        float(value)
        return True
    except ValueError:
        return False


def _order(value: str) -> tuple[int, float, str]:
    """Numbers in numeric order, then names in the study's order of modes, then the rest."""
    if _is_number(value):
        return (0, float(value), "")
    modes = list(MODE_COLORS)
    return (1, float(modes.index(value)) if value in modes else math.inf, value)
