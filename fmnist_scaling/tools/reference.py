"""The two loops the benchmark runs beside the project, each as its own process:

- ``article``: the original write-up's loop, as users would otherwise run it: a map-style
  ``Dataset`` whose ``__getitem__`` moves one sample to the device, a shuffled ``DataLoader`` of
  batch 32, ``loss.item()`` every step, and after each epoch a second pass over the training set
  through the same loader for the training accuracy.
- ``floor``: the same model and optimizer with nothing in the way: every image in one tensor on
  the device, a fresh ``randperm`` per epoch, batches by indexing, no per-step host sync, the
  accuracy from one large forward pass.

``limit``: the compute limit of a project run, :func:`compute_limit` (``--max-steps``: that many
training steps per epoch, the evaluation passes whole, as the project runs with a step limit).
``--threads N`` sets torch's threads (default: torch's own).

Both loops train on all 60,000 images with SGD lr 1e-2 and read the data with torchvision, as the
article does. ``python -m fmnist_scaling.tools.reference {article,floor} --root data --epochs 5``
prints one JSON line: training accuracy per epoch and ``first_step_at`` (Unix time).
``--net cnn`` trains the project's small CNN (:class:`fmnist_scaling.models.networks.CNN`) instead of
the MLP, on 1 x 28 x 28 images.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn

from fmnist_scaling.utils.files import user_path

#: The input shape of one image for each network.
SHAPES = {"mlp": (28 * 28,), "cnn": (1, 28, 28)}


def _model(device: torch.device, net: str = "mlp") -> tuple[nn.Module, torch.optim.Optimizer]:
    model: nn.Module
    if net == "cnn":
        from fmnist_scaling.models.networks import CNN

        model = CNN().to(device)
    else:
        model = nn.Sequential(nn.Linear(784, 1000), nn.ReLU(), nn.Linear(1000, 10)).to(device)
    return model, torch.optim.SGD(model.parameters(), lr=1e-2)


def _images(root: str) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision import datasets

    train = datasets.FashionMNIST(root, train=True, download=False)
    return train.data, train.targets


def article(
    root: str, epochs: int, scale: float, device: torch.device, max_steps: int | None, net: str = "mlp"
) -> dict:
    from torch.utils.data import DataLoader, Dataset

    class FMNISTDataset(Dataset):
        def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
            self.x, self.y = x.float().view(-1, *SHAPES[net]) / scale, y

        def __getitem__(self, ix: int):
            return self.x[ix].to(device), self.y[ix].to(device)

        def __len__(self) -> int:
            return len(self.x)

    loader = DataLoader(FMNISTDataset(*_images(root)), batch_size=32, shuffle=True)
    model, optimizer = _model(device, net)
    loss_fn = nn.CrossEntropyLoss()
    first_step_at, accuracies = None, []
    for _ in range(epochs):
        model.train()
        for step, (x, y) in enumerate(loader):
            first_step_at = first_step_at or time.time()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            loss.item()
            if max_steps and step + 1 >= max_steps:
                break
        model.eval()
        correct = total = 0
        with torch.no_grad():
            for x, y in loader:
                correct += (model(x).argmax(1) == y).sum().item()
                total += len(y)
        accuracies.append(correct / total)
    return {"first_step_at": first_step_at, "train_acc": accuracies}


def floor(root: str, epochs: int, scale: float, device: torch.device, max_steps: int | None, net: str = "mlp") -> dict:
    images, labels = _images(root)
    x, y = (images.float().view(-1, *SHAPES[net]) / scale).to(device), labels.to(device)
    model, optimizer = _model(device, net)
    loss_fn = nn.CrossEntropyLoss()
    first_step_at, accuracies = None, []
    for _ in range(epochs):
        order = torch.randperm(len(x), device=device)
        batches = order.split(32)[:max_steps] if max_steps else order.split(32)
        for batch in batches:
            first_step_at = first_step_at or time.time()
            loss = loss_fn(model(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        chunk = 10_000 if net == "cnn" else len(x)  # the CNN's activations of 60,000 images: 2 GB at once
        with torch.no_grad():
            correct = sum(int((model(xb).argmax(1) == yb).sum()) for xb, yb in zip(x.split(chunk), y.split(chunk)))
            accuracies.append(correct / len(y))
    return {"first_step_at": first_step_at, "train_acc": accuracies}


def compute_limit(
    epochs: int,
    device: torch.device,
    train_rows: int = 55_000,
    eval_rows: int = 60_000,
    test_rows: int = 10_000,
    batch: int = 32,
    eval_batch: int = 2000,
    sizes: tuple[int, int, int] = (784, 1000, 10),
) -> dict:
    """The time of the matrix products that a project run of the MLP cannot avoid, done alone at
    the same shapes: per training step the two forward products and the three backward ones
    (the weight gradients and the hidden layer's; none for the input), per epoch a forward pass
    over ``eval_rows`` (the validation split and the whole training split) and at the end over
    the test split. No activation, loss, update or data movement: what no implementation can go
    below on this machine, short of other arithmetic."""
    d_in, d_hidden, d_out = sizes
    w1, w2 = torch.randn(d_hidden, d_in, device=device), torch.randn(d_out, d_hidden, device=device)

    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.mm(torch.mm(x, w1.T), w2.T)

    def step(x: torch.Tensor) -> None:
        h = torch.mm(x, w1.T)
        g = torch.mm(h, w2.T)  # the logits' shape: the loss's gradient stands in for them
        torch.mm(g.T, h)  # dW2
        dh = torch.mm(g, w2)  # the hidden layer's gradient
        torch.mm(dh.T, x)  # dW1

    steps = -(-train_rows // batch)
    x = torch.randn(batch, d_in, device=device)
    last = torch.randn(train_rows - (steps - 1) * batch, d_in, device=device)
    xe = torch.randn(eval_batch, d_in, device=device)
    step(x)  # warm-up: the first call of each shape pays for its kernels' set-up
    forward(xe)
    if device.type == "cuda":
        torch.cuda.synchronize()

    def timed(work) -> float:
        start = time.perf_counter()
        work()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    def train_epoch() -> None:
        for _ in range(steps - 1):
            step(x)
        step(last)

    def evaluate(rows: int) -> None:
        for _ in range(rows // eval_batch):
            forward(xe)
        if rows % eval_batch:  # the last, smaller batch
            forward(xe[: rows % eval_batch])

    train_s = eval_s = 0.0
    for _ in range(epochs):  # in the run's order: an epoch's steps, then its evaluation passes
        train_s += timed(train_epoch)
        eval_s += timed(lambda: evaluate(eval_rows))
    eval_s += timed(lambda: evaluate(test_rows))
    seconds = train_s + eval_s
    # a step: the input layer's weights in two products (forward, dW1), the output layer's in three
    flop = 2 * (epochs * (2 * train_rows * d_in * d_hidden + 3 * train_rows * d_hidden * d_out))
    flop += 2 * (epochs * eval_rows + test_rows) * (d_in * d_hidden + d_hidden * d_out)
    return {"compute_s": seconds, "train_s": train_s, "eval_s": eval_s, "tflop": flop / 1e12, "steps_per_epoch": steps}


LOOPS = {"article": article, "floor": floor}


def main() -> None:
    parser = argparse.ArgumentParser(description="The benchmark's reference loops.")
    parser.add_argument("loop", choices=sorted(LOOPS) + ["limit"], help="a loop, or limit: the compute limit")
    parser.add_argument(
        "--root", type=user_path, default="data", help="data folder holding FashionMNIST/raw (default: data)"
    )
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--scale", type=float, default=255.0, help="divide pixels by this (1: raw pixels)")
    parser.add_argument("--max-steps", type=int, default=None, help="training steps per epoch (default: all)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--net", choices=sorted(SHAPES), default="mlp", help="the network (default: the article's MLP)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.loop == "limit":
        rows = {"train_rows": min(55_000, 32 * args.max_steps)} if args.max_steps else {}
        print(json.dumps(compute_limit(args.epochs, device, **rows)))
        return
    result = LOOPS[args.loop](args.root, args.epochs, args.scale, device, args.max_steps, args.net)
    if device.type == "cuda":
        result["gpu_peak_bytes"] = torch.cuda.max_memory_allocated()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
