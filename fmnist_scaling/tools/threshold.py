"""Where training breaks, predicted from the data: the largest eigenvalue of E[x xᵀ] against the
critical learning rate, per scaling mode and for a few input gains.

    python -m fmnist_scaling.tools.threshold                      # every case below, seeds 0 1 2
    python -m fmnist_scaling.tools.threshold --cases none max --seeds 0 --jobs 2 model.net.hidden=[500]

For each case (a list of Hydra overrides of the train config, so a scaling mode of your own works
too) it computes, from the training split as that scaling gives it:

- ``lambda``: the largest eigenvalue of the input second-moment matrix E[x xᵀ] (784 x 784, summed
  in float64; power iteration), the curvature that SGD on the first layer sees first;
- ``sharpness`` (S₀): the largest eigenvalue of the loss's own Hessian at the init, over every
  parameter, on the first 2048 training inputs (:mod:`fmnist_scaling.tools.sharpness`), per seed;
- the critical learning rate: the smallest lr of a grid of 8 values per decade, above one at
  which the network learned, at which one epoch (``--epochs``) of training ends *broken*: most
  first-layer ReLUs dead on the probe batch (over half, ``--dead-limit``), the validation accuracy
  at chance (under twice chance), a non-finite loss, or (``--loss-limit``) a validation loss above
  a bound. A coarse scan by decades (first seed) brackets it; each seed then walks the fine grid
  from the bracket's lower end.

One epoch is the run's own training: the same model, data module, split, order and scaling as
``train`` (Hydra config), the same steps (``ScalingClassifier.sgd_step``: the fused step where it
applies, else autograd and the configured optimizer), without Lightning around it: a few seconds
each. Every tool that trains a case (this one, :mod:`~fmnist_scaling.tools.sharpness`) trains it
through :meth:`Case.train` on one torch thread, whatever ``--jobs``: the thread count changes the
order of float sums, and near the threshold that decides whether a seed breaks (at 2 threads
against 1 the two tools once saw 51.5% and 45.1% dead for the same lr and seed).

Writes ``threshold.json`` and ``threshold.md`` (the table) into ``--out``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fmnist_scaling.data import splits
from fmnist_scaling.run.config_tree import compose
from fmnist_scaling.run.resolvers import CONF_DIR, group_choices  # importing it registers the config's resolvers
from fmnist_scaling.utils.files import user_path
from fmnist_scaling.utils.log import log

if TYPE_CHECKING:  # torch is imported where it is used: `--help` answers without it
    from torch import Tensor

#: The cases of the table: a name and the train config's overrides: every scaling mode, and gains.
CASES: dict[str, list[str]] = {
    **{mode: [f"scaling={mode}"] for mode in group_choices("scaling")},
    # gains on the `/ max` inputs of whichever dataset is chosen (Fashion-MNIST: max_value 63.75, ...)
    **{
        f"max, gain {g}": ["scaling=max", f"scaling.max_value='${{divide:${{dataset:max_value}},{g}}}'"]
        for g in (4, 16, 64)
    },
}
#: Learning rates tried: 10^(k / STEPS_PER_DECADE) for integers k.
STEPS_PER_DECADE = 8
#: Broken: over this fraction of first-layer ReLUs dead on the probe batch after the epoch.
DEAD_LIMIT = 0.5
#: The coarse scan's range of lr, in decades (10^-9 .. 10^3).
DECADES = (-9, 3)
#: Torch threads of every trial (see the module docstring): one, so --jobs changes no result.
THREADS = 1


def second_moment(x: Tensor, chunk: int = 8192) -> Tensor:
    """E[x xᵀ] of the rows of ``x`` (N, D), summed in float64 chunk by chunk."""
    import torch

    total = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64)
    for part in x.split(chunk):
        part = part.to(torch.float64)
        total += part.T @ part
    return total / len(x)


def top_eigenvalue(matrix: Tensor, iterations: int = 500, tol: float = 1e-12) -> float:
    """The largest eigenvalue of a symmetric positive semi-definite ``matrix``, by power iteration."""
    import torch

    v = torch.ones(matrix.shape[0], dtype=matrix.dtype) / matrix.shape[0] ** 0.5
    value = 0.0
    for _ in range(iterations):
        w = matrix @ v
        new = float(v @ w)
        norm = w.norm()
        if norm == 0:
            return 0.0
        v = w / norm
        if abs(new - value) <= tol * abs(new):
            return new
        value = new
    return value


def grid_lr(k: int) -> float:
    return 10.0 ** (k / STEPS_PER_DECADE)


def on_grid(lr: float) -> float:
    """The grid's own value for an lr as the tables print it (0.562 is 10^(-2/8) = 0.56234...);
    any other lr unchanged. Near the threshold that difference alone moved a seed across the
    dead-units line (46.6% against 52.2% dead at `max`, seed 0)."""
    k = STEPS_PER_DECADE * math.log10(lr)
    return grid_lr(round(k)) if abs(k - round(k)) < 0.01 else lr


class Case:
    """One case: its data (split and scaled once) and one-epoch trials at any lr and seed."""

    def __init__(self, overrides: list[str]) -> None:
        import torch
        from hydra.utils import instantiate

        torch.set_num_threads(THREADS)
        from fmnist_scaling.run.validate import validate

        self.cfg = compose("train", overrides)
        validate(self.cfg, before_hydra=True)  # outside a Hydra run: its ${hydra:...} paths are not needed
        shape = instantiate(self.cfg.model, _recursive_=False).input_shape  # as train: flat, or (1, H, W)
        self.data = instantiate(self.cfg.data, scaling=instantiate(self.cfg.scaling), input_shape=shape)
        self.data.prepare_data()
        self.data.setup("fit")

    def eigenvalue(self) -> float:
        x, _ = self.data.scaled(splits.TRAIN)
        return top_eigenvalue(second_moment(x.flatten(1)))  # whatever shape the network takes: pixels

    def model(self, lr: float, seed: int):
        """The run's model at its init for ``seed`` with the learning rate ``lr``, its optimizer,
        and the run's own step chosen (fused where it applies, else autograd); the data's
        training order set to ``seed`` as well."""
        import torch
        from hydra.utils import instantiate

        self.data.seed = seed
        torch.manual_seed(seed)  # as train: seed_everything, then the model
        model = instantiate(self.cfg.model, _recursive_=False, optimizer={**self.cfg.model.optimizer, "lr": lr})
        optimizer = model.configure_optimizers()
        model.choose_step(optimizer)
        return model, optimizer

    def sharpness(self, seed: int) -> float:
        """S₀: the largest Hessian eigenvalue of the loss at the init of ``seed``, on the first
        :data:`~fmnist_scaling.tools.sharpness.SAMPLES` training inputs."""
        from fmnist_scaling.tools.sharpness import SAMPLES, hessian_top_eigenvalue

        model, _ = self.model(1.0, seed)
        x, y = self.data.scaled(splits.TRAIN)
        return hessian_top_eigenvalue(model, x[:SAMPLES], y[:SAMPLES], seed=seed)

    def train(self, model, optimizer, epochs: int = 1, at: Callable[[int], None] | None = None) -> bool:
        """``epochs`` epochs of the run's own SGD steps, in the run's own order, stopping at the
        first non-finite loss; ``at(steps_done)`` is called before every step and once at the end.
        Returns whether every loss was finite. The one training loop of every tool here."""
        import torch

        loader = self.data.train_dataloader()
        done = 0
        for epoch in range(epochs):
            loader.sampler.set_epoch(epoch)
            for group in loader:
                # a group of steps at once, as in training; one by one where something looks in between
                for steps in ([minibatch] for minibatch in group) if at else [group]:
                    if at:
                        at(done)
                    losses = torch.stack([model.sgd_step(x, y, optimizer)[0].detach() for x, y in steps])
                    done += len(losses)
                    if not torch.isfinite(losses).all():
                        if at:
                            at(done)
                        return False
        if at:
            at(done)
        return True

    def trial(
        self, lr: float, seed: int, dead_limit: float = DEAD_LIMIT, epochs: int = 1, loss_limit: float = math.inf
    ) -> dict[str, Any]:
        """``epochs`` epochs at ``lr`` from the init of ``seed``: whether it broke (over
        ``dead_limit`` of the first-layer ReLUs dead, chance accuracy, a non-finite training loss,
        or a validation loss over ``loss_limit``), and how."""
        import torch

        from fmnist_scaling.models.diagnostics import probe
        from fmnist_scaling.run.records import COLLAPSE_FACTOR

        model, optimizer = self.model(lr, seed)
        finite = self.train(model, optimizer, epochs)
        stats, _ = probe(model, *self.data.probe_batch())
        model.eval()
        x, y = self.data.scaled(splits.VAL if self.data.val_size else splits.TRAIN)
        correct, loss_sum = 0, 0.0
        with torch.no_grad():
            for xb, yb in zip(x.split(2000), y.split(2000)):
                logits = model(xb)
                correct += int((logits.argmax(1) == yb).sum())
                loss_sum += float(torch.nn.functional.cross_entropy(logits, yb, reduction="sum"))
        acc, loss = correct / len(y), loss_sum / len(y)
        dead = stats.get("dead_frac", math.nan)
        why = [
            w
            for w, bad in (
                ("diverged", not finite),
                ("dead", dead > dead_limit),
                ("chance", acc < COLLAPSE_FACTOR / model.hparams.num_classes),
                ("loss", not loss <= loss_limit),  # NaN included
            )
            if bad
        ]
        return {"lr": lr, "seed": seed, "acc": acc, "loss": loss, "dead_frac": dead, "broken": bool(why), "why": why}


def find_threshold(
    name: str,
    overrides: list[str],
    seeds: list[int],
    dead_limit: float = DEAD_LIMIT,
    epochs: int = 1,
    loss_limit: float = math.inf,
) -> dict[str, Any]:
    """λ, the sharpness at init and the critical lr of one case (see the module docstring);
    ``dead_limit``: the dead fraction that counts as broken (1.0: only chance accuracy or
    divergence do); ``epochs``: the length of each trial; ``loss_limit``: a validation loss above it
    counts as broken too (``log(classes)``: worse than a uniform guess)."""
    start = time.perf_counter()
    case = Case(overrides)
    lam = case.eigenvalue()
    sharpness = {seed: case.sharpness(seed) for seed in seeds}
    trials: list[dict[str, Any]] = []

    def broken(k: int, seed: int) -> bool:
        result = case.trial(grid_lr(k), seed, dead_limit, epochs, loss_limit)
        trials.append({**result, "k": k})
        return result["broken"]

    # coarse, on the first seed: decades upward, to the first broken one above one that learned
    # (too small an lr also ends at chance: that is not the threshold)
    k_broken, learned = None, False
    for decade in range(DECADES[0], DECADES[1] + 1):
        if broken(decade * STEPS_PER_DECADE, seeds[0]):
            if learned:
                k_broken = decade * STEPS_PER_DECADE
                break
        else:
            learned = True
    per_seed: dict[int, float] = {}
    top = DECADES[1] * STEPS_PER_DECADE
    for seed in seeds if k_broken is not None else []:
        # fine: up from the last decade that learned (on past the bracket where this seed survives
        # it); down from there where this seed breaks at it
        assert k_broken is not None  # the loop runs only then
        k = k_broken - STEPS_PER_DECADE
        if broken(k, seed):
            while k > DECADES[0] * STEPS_PER_DECADE and broken(k - 1, seed):
                k -= 1
        else:
            k += 1
            while k <= top and not (k == k_broken and seed == seeds[0]) and not broken(k, seed):
                k += 1
        per_seed[seed] = grid_lr(k) if k <= top else math.nan
    critical = sorted(v for v in per_seed.values() if math.isfinite(v))
    median = statistics.median_low(critical) if critical else math.nan  # a value of the grid
    reasons = sorted({w for t in trials if t["broken"] and per_seed.get(t["seed"]) == t["lr"] for w in t["why"]})
    s0 = statistics.median(sharpness.values())
    return {
        "case": name,
        "overrides": overrides,
        "epochs": epochs,
        "loss_limit": loss_limit if math.isfinite(loss_limit) else None,
        "lambda": lam,
        "sharpness": s0,
        "sharpness_by_seed": sharpness,
        "critical_lr": median,
        "critical_lr_by_seed": per_seed,
        "product": median * lam,
        "product_sqrt": median * math.sqrt(lam),
        "product_sharpness": median * s0,
        "broke_by": reasons,
        "trials": trials,
        "seconds": time.perf_counter() - start,
    }


def to_markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| case | λ of E[x xᵀ] | sharpness S₀ at init (median) | critical lr (median; per seed) "
        "| lr · λ | lr · √λ | lr · S₀ | broke by |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        seeds = ", ".join(f"{v:.3g}" for v in row["critical_lr_by_seed"].values())
        lines.append(
            f"| {row['case']} | {row['lambda']:.4g} | {row['sharpness']:.4g} | {row['critical_lr']:.3g} ({seeds}) | "
            f"{row['product']:.3g} | {row['product_sqrt']:.3g} | {row['product_sharpness']:.3g} "
            f"| {', '.join(row['broke_by']) or '-'} |"
        )
    lams = [r["lambda"] for r in rows if r["lambda"] > 0]
    if lams and any(math.isfinite(r["product"]) for r in rows):
        lines += [
            "",
            f"λ spans {math.log10(max(lams) / min(lams)):.1f} decades ({min(lams):.3g} .. {max(lams):.3g}); "
            f"the grid's step is a factor {grid_lr(1):.3f}. At the threshold:",
            "",
        ]
        for key, label in (("product", "lr · λ"), ("product_sqrt", "lr · √λ"), ("product_sharpness", "lr · S₀")):
            values = [r[key] for r in rows if math.isfinite(r[key])]
            lines.append(
                f"- {label} spans {min(values):.3g} .. {max(values):.3g} (a factor {max(values) / min(values):.1f})"
            )
    return "\n".join(lines) + "\n"


def case_overrides(parser: argparse.ArgumentParser, names: list[str], overrides: list[str]) -> dict[str, list[str]]:
    """Each case's overrides (a name of :data:`CASES`, else a scaling mode); an unknown mode or
    config choice ends the command with one line naming it."""
    from fmnist_scaling.run.overrides import unknown_choice

    cases = {name: CASES.get(name) or [f"scaling={name}"] for name in names}
    problem = unknown_choice([o for name in names if name not in CASES for o in cases[name]] + overrides, CONF_DIR)
    if problem:
        parser.error(f"{problem} (or a case: {', '.join(CASES)})")
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], prog="python -m fmnist_scaling.tools.threshold"
    )
    parser.add_argument(
        "--cases",
        nargs="+",
        default=list(CASES),
        metavar="NAME",
        help=f"cases to measure (default: all): {', '.join(CASES)}; any other name is a scaling mode "
        "(scaling=NAME, a mode of your own included)",
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--dead-limit",
        type=float,
        default=DEAD_LIMIT,
        help=f"the dead fraction of first-layer ReLUs that counts as broken (default {DEAD_LIMIT}; "
        "1: only chance accuracy or a non-finite loss)",
    )
    parser.add_argument("--epochs", type=int, default=1, help="epochs per trial (default 1)")
    parser.add_argument(
        "--loss-limit",
        type=float,
        default=math.inf,
        help="a validation loss above this counts as broken too (default: none; 2.303 = ln 10: "
        "worse than a uniform guess over 10 classes)",
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="cases measured side by side (every trial runs on one torch thread)"
    )
    parser.add_argument(
        "overrides", nargs="*", help="train config overrides for every case (data.root=..., seed is ignored)"
    )
    parser.add_argument("--out", type=user_path, default=Path("lightning_logs/threshold"))
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs {args.epochs} is invalid: must be an integer >= 1")
    cases = case_overrides(parser, args.cases, args.overrides)
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [
            pool.submit(
                find_threshold,
                name,
                [*overrides, *args.overrides],
                args.seeds,
                args.dead_limit,
                args.epochs,
                args.loss_limit,
            )
            for name, overrides in cases.items()
        ]
        rows = []
        for future in futures:
            rows.append(future.result())
            row = rows[-1]
            log.info(
                f"{row['case']}: lambda {row['lambda']:.4g}, S0 {row['sharpness']:.4g}, "
                f"critical lr {row['critical_lr']:.3g}, "
                f"product {row['product']:.3g} ({len(row['trials'])} epochs, {row['seconds']:.0f} s)"
            )
    args.out.mkdir(parents=True, exist_ok=True)
    from fmnist_scaling.run.records import write_json

    write_json(
        args.out / "threshold.json",
        {
            "steps_per_decade": STEPS_PER_DECADE,
            "dead_limit": args.dead_limit,
            "loss_limit": args.loss_limit if math.isfinite(args.loss_limit) else None,
            "epochs": args.epochs,
            "cases": rows,
        },
    )
    markdown = to_markdown(rows)
    (args.out / "threshold.md").write_text(markdown)
    log.info(f"\n{markdown}\nwritten: {args.out / 'threshold.json'}, {args.out / 'threshold.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
