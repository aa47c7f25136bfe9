"""Training curves: a valid PNG for the series each stage kind logs, nothing for a history without series."""

import matplotlib.image
import pytest

from medreason.utils.training_curves import PANELS, plot_training_curves, series

SFT = [{"step": s, "loss": 3.0 / s, "learning_rate": 1e-3, "grad_norm": 1.0 / s, "epoch": s / 4} for s in range(1, 5)] + [
    {"step": 4, "eval_loss": 0.5}, {"step": 4, "train_runtime": 2.0}]
DPO = [{"step": s, "loss": 0.7, "learning_rate": 1e-4, "rewards/margins": 0.1 * s, "rewards/accuracies": 0.5}
       for s in range(1, 4)]
DAPO = [{"step": s, "loss": 0.1, "learning_rate": 1e-6, "grad_norm": 0.3, "reward_mean": 0.2 * s, "reward_std": 0.4,
         "completion_length_mean": 100.0, "completion_length_max": 160.0, "clip_fraction_low": 0.0,
         "clip_fraction_high": 0.01, "truncation_rate": 0.1, "entropy": 2.0, "kept_group_ratio": 0.5,
         "benchmark/medqa": 0.3 + 0.1 * s} for s in range(1, 4)]


@pytest.mark.parametrize(("history", "panels"), [(SFT, 3), (DPO, 4), (DAPO, 9)], ids=["sft", "dpo", "dapo"])
def test_curves_are_a_png_per_stage_kind(tmp_path, history, panels):
    path = plot_training_curves(history, tmp_path / "curves.png", "stage")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width = matplotlib.image.imread(path).shape[:2]
    drawn = sum(any(series(history, key)[0] for key in keys) for _, keys in PANELS) + any("benchmark/" in k for k in history[0])
    assert drawn == panels
    assert width == 100 * 4.2 * min(3, panels) and height == 280 * -(-panels // 3)


def test_no_series_no_file(tmp_path):
    assert plot_training_curves([{"step": 1, "train_runtime": 1.0}], tmp_path / "c.png", "x") is None
    assert not (tmp_path / "c.png").exists()
