"""The two loops the benchmark runs beside the project, each as its own process:

- ``article``: the original write-up's loop, as users would otherwise run it: a map-style
  ``Dataset`` whose ``__getitem__`` moves one sample to the device, a shuffled ``DataLoader`` of
  batch 32, ``loss.item()`` every step, and after each epoch a second pass over the training set
  through the same loader for the training accuracy.
- ``floor``: the same model and optimizer with nothing in the way: every image in one tensor on
  the device, a fresh ``randperm`` per epoch, batches by indexing, no per-step host sync, the
  accuracy from one large forward pass.

Both train on all 60,000 images with SGD lr 1e-2 and read the data with torchvision, as the
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

#: The input shape of one image for each network.
SHAPES = {"mlp": (28 * 28,), "cnn": (1, 28, 28)}


def _model(device: torch.device, net: str = "mlp") -> tuple[nn.Module, torch.optim.Optimizer]:
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


LOOPS = {"article": article, "floor": floor}


def main() -> None:
    parser = argparse.ArgumentParser(description="The benchmark's reference loops.")
    parser.add_argument("loop", choices=sorted(LOOPS))
    parser.add_argument("--root", default="data", help="data folder holding FashionMNIST/raw (default: data)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--scale", type=float, default=255.0, help="divide pixels by this (1: raw pixels)")
    parser.add_argument("--max-steps", type=int, default=None, help="training steps per epoch (default: all)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--net", choices=sorted(SHAPES), default="mlp", help="the network (default: the article's MLP)")
    args = parser.parse_args()
    torch.manual_seed(0)
    device = torch.device(args.device)
    result = LOOPS[args.loop](args.root, args.epochs, args.scale, device, args.max_steps, args.net)
    if device.type == "cuda":
        result["gpu_peak_bytes"] = torch.cuda.max_memory_allocated()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
