"""The training-speed table (does scaling train faster?) on records written by the test."""

from fmnist_scaling.tools import train_speed
from tests.conftest import write_record


def history(accuracies: list[float], seconds: float) -> list[dict]:
    return [
        {"epoch": e, "step": 100 * (e + 1), "train_time_s": seconds, "train_full/acc": a}
        for e, a in enumerate(accuracies)
    ]


def test_steps_to_the_target_and_seconds_per_epoch(tmp_path, capsys):
    runs = {
        "scaling=max,seed=0": (["scaling=max", "seed=0"], [0.7, 0.82, 0.85], 2.0),
        "scaling=max,seed=1": (["scaling=max", "seed=1"], [0.81, 0.83, 0.86], 4.0),
        "scaling=none,seed=0": (["scaling=none", "seed=0"], [0.1, 0.1, 0.1], 3.0),
    }
    for name, (overrides, accuracies, seconds) in runs.items():
        seed = int(overrides[1].split("=")[1])
        (tmp_path / name).mkdir()
        write_record(
            tmp_path / name,
            overrides,
            {
                "status": "completed",
                "config": {"seed": seed},
                "final": {"train_full/acc": accuracies[-1]},
                "history": history(accuracies, seconds),
            },
        )
    assert train_speed.main([str(tmp_path), "--target", "0.8"]) == 0
    out = capsys.readouterr().out
    assert "| scaling=max | 2 | 3.00 | 200, 100 |" in out  # seed 0 at epoch 2, seed 1 at epoch 1
    assert "| scaling=none | 1 | 3.00 | not reached |" in out
