"""The loss's own curvature beside the data's: the sharpness (the largest eigenvalue of the Hessian
of the training loss with respect to every parameter) at the init and along an epoch of training.

    python -m fmnist_scaling.tools.sharpness --cases none max --lrs 0.00237 0.00316 --seeds 0

For each case (the names and overrides of :mod:`fmnist_scaling.tools.threshold`) and each lr it
trains one epoch by the threshold's own loop and thread count and, at a few steps on the way, measures the sharpness S
on a fixed batch of ``--samples`` training inputs (Hessian-vector products by double backward,
power iteration), the dead fraction of first-layer ReLUs on the probe batch and the loss.
The anchor: gradient descent on a quadratic of curvature S is stable for lr < 2 / S, and full-batch
gradient descent drives S up to 2 / lr and hovers there (the "edge of stability", Cohen et al.,
2021). Is S / (2 / lr) = lr · S / 2 near 1 where training breaks? The table says, per step.

Writes ``sharpness.json`` and ``sharpness.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fmnist_scaling.data import splits
from fmnist_scaling.utils.files import user_path

if TYPE_CHECKING:  # torch is imported where it is used: `--help` answers without it
    from torch import Tensor, nn

#: Inputs of the fixed batch on which the sharpness is measured (the first of the training split).
SAMPLES = 2048
#: Steps of the epoch at which the trajectory measures the sharpness (and at its end; those past it are dropped).
STEPS = (0, 10, 30, 100, 300, 1000)


def hessian_top_eigenvalue(
    model: nn.Module, x: Tensor, y: Tensor, iterations: int = 100, tol: float = 1e-3, seed: int = 0
) -> float:
    """The eigenvalue of largest magnitude of the Hessian of ``cross_entropy(model(x), y)`` (mean
    over the batch) with respect to all of ``model``'s parameters: power iteration on
    Hessian-vector products, from a seeded random direction, until the Rayleigh quotient moves by
    less than ``tol`` (relative). ``model`` itself is left untouched (a copy is used: a BatchNorm's
    running statistics do not move)."""
    import torch
    from torch import nn

    model = copy.deepcopy(model).train()
    params = [p for p in model.parameters() if p.requires_grad]
    loss = nn.functional.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    generator = torch.Generator().manual_seed(seed)
    v = [torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device) for p in params]
    value = math.nan
    for _ in range(iterations):
        squares = sum((u * u).sum() for u in v)
        assert isinstance(squares, torch.Tensor)  # a sum of tensors: the model has parameters
        norm = torch.sqrt(squares)
        v = [u / norm for u in v]
        hv = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)
        new = float(sum((a * b).sum() for a, b in zip(v, hv)))
        if not math.isfinite(new):
            return new
        if abs(new - value) <= tol * abs(new):
            return new
        value, v = new, [h.detach() for h in hv]
    return value


def trajectory(case: Any, lr: float, seed: int, steps: tuple[int, ...] = STEPS, samples: int = SAMPLES) -> list[dict]:
    """One epoch of ``case`` (a :class:`fmnist_scaling.tools.threshold.Case`) at ``lr`` from the
    init of ``seed``, trained by the threshold's own loop (:meth:`~fmnist_scaling.tools.threshold.Case.train`);
    at each of ``steps`` (SGD steps done) and at the epoch's end the sharpness, ``lr · S / 2``
    (1: the edge of stability), the dead fraction and the loss."""
    import torch
    from torch import nn

    from fmnist_scaling.models.diagnostics import probe

    model, optimizer = case.model(lr, seed)
    x, y = case.data.scaled(splits.TRAIN)
    x, y = x[:samples], y[:samples]
    probe_x, probe_y = case.data.probe_batch()
    rows: list[dict] = []

    def measure(done: int) -> None:
        if rows and rows[-1]["step"] == done:
            return
        with torch.no_grad():
            loss = float(nn.functional.cross_entropy(model(x), y))
        sharp = hessian_top_eigenvalue(model, x, y, seed=seed) if math.isfinite(loss) else math.nan
        stats, _ = probe(model, probe_x, probe_y)
        dead = stats.get("dead_frac")
        rows.append({"step": done, "sharpness": sharp, "lr_s_half": lr * sharp / 2, "dead_frac": dead, "loss": loss})

    last = [0]  # steps done so far: the end of the epoch, or the step whose loss was not finite

    def at(done: int) -> None:
        last[0] = done
        if done in steps:
            measure(done)

    case.train(model, optimizer, at=at)
    measure(last[0])
    return rows


def to_markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "| case | lr | seed | step | sharpness S | lr · S / 2 | dead | loss |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        for row in result["rows"]:
            dead = row["dead_frac"]
            lines.append(
                f"| {result['case']} | {result['lr']:.3g} | {result['seed']} | {row['step']} | {row['sharpness']:.4g} "
                f"| {row['lr_s_half']:.3g} | {'-' if dead is None else f'{100 * dead:.1f}%'} | {row['loss']:.3g} |"
            )
    return "\n".join(lines) + "\n"


def measure_case(name: str, overrides: list[str], lrs: list[float], seeds: list[int]):
    from fmnist_scaling.tools.threshold import Case

    case = Case(overrides)
    return [
        {"case": name, "overrides": overrides, "lr": lr, "seed": seed, "rows": trajectory(case, lr, seed)}
        for lr in lrs
        for seed in seeds
    ]


def main(argv: list[str] | None = None) -> int:
    from concurrent.futures import ProcessPoolExecutor

    from fmnist_scaling.tools.threshold import CASES, case_overrides, on_grid

    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], prog="python -m fmnist_scaling.tools.sharpness"
    )
    parser.add_argument("--cases", nargs="+", required=True, metavar="NAME", help=f"{', '.join(CASES)} or a mode")
    parser.add_argument(
        "--lrs",
        nargs="+",
        type=float,
        required=True,
        help="learning rates, each one epoch; one printed as the threshold's table prints its grid (0.562) is "
        "that grid value (10^(-2/8))",
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--jobs", type=int, default=1, help="cases side by side (each on one torch thread)")
    parser.add_argument("overrides", nargs="*", help="train config overrides for every case")
    parser.add_argument("--out", type=user_path, default=Path("lightning_logs/sharpness"))
    args = parser.parse_args(argv)
    cases = case_overrides(parser, args.cases, args.overrides)
    args.lrs = [on_grid(lr) for lr in args.lrs]  # the threshold's lrs, not their printed roundings
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [
            pool.submit(measure_case, name, [*overrides, *args.overrides], args.lrs, args.seeds)
            for name, overrides in cases.items()
        ]
        results = [result for future in futures for result in future.result()]
    from fmnist_scaling.run.records import write_json

    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "sharpness.json", {"samples": SAMPLES, "results": results})
    markdown = to_markdown(results)
    (args.out / "sharpness.md").write_text(markdown)
    print(f"{markdown}\nwritten: {args.out / 'sharpness.json'}, {args.out / 'sharpness.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
