"""Non-finite guard: a NaN/Inf loss or gradient skips the step (counted), repeated ones lower the
learning rate, and a run that never recovers stops with a clear error and its checkpoint intact."""

from __future__ import annotations

import json

import pytest
import torch

from nerfkit.errors import RunError
from nerfkit.train.config import DataConfig, GuardConfig, LogConfig, RuntimeConfig, TrainConfig
from nerfkit.train.trainer import Trainer, gradients_finite_flag


# a small model: these tests are about the guard, not about quality
CHEAP = {"max_resolution": 256, "n_levels": 8, "log2_table_size": 14, "grid_resolution": 32,
         "target_samples": 1 << 14, "max_samples_per_ray": 128}


def _trainer(data, out, steps, checkpoint_every=0) -> Trainer:
    cfg = TrainConfig(data=DataConfig(path=str(data)), method="ngp", method_options=CHEAP,
                      runtime=RuntimeConfig(seed=0, max_steps=steps, threads=2),
                      log=LogConfig(eval_every=0, checkpoint_every=checkpoint_every, progress=False),
                      guard=GuardConfig(lr_backoff_after=3, lr_backoff=0.5, max_bad_steps=10), output=str(out))
    return Trainer(cfg)


def _poison_loss(trainer: Trainer, bad_calls: set[int]):
    """Make the loss NaN on the given loss calls (0-based, counting retried steps too)."""
    real = trainer.model.loss
    calls = {"n": 0}

    def loss(out, target):
        losses = real(out, target)
        i = calls["n"]
        calls["n"] += 1
        if i in bad_calls:
            losses["loss"] = losses["loss"] * float("nan")
        return losses

    trainer.model.loss = loss
    return calls


def _events(run) -> list[dict]:
    return [json.loads(x) for x in (run / "events.jsonl").read_text().splitlines()]


def test_transient_nan_loss_is_skipped_counted_and_lowers_the_lr(synthetic_64, tmp_path):
    tr = _trainer(synthetic_64, tmp_path / "run", steps=30)
    _poison_loss(tr, {10, 11, 12, 13, 20})  # four in a row (one back-off), later one more
    before = {k: v.clone() for k, v in tr.model.state_dict().items()}
    tr.train()
    assert tr.step == 30 and tr.skipped == 5
    assert tr.lr_scale == 0.5  # 3 in a row -> halved once; the 4th and the lone 5th do not reach 6 / 3 in a row
    ev = _events(tmp_path / "run")
    assert sum(e["event"] == "non_finite" for e in ev) == 5
    assert [e["lr_scale"] for e in ev if e["event"] == "lr_lowered"] == [0.5]
    log = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    last = log[-1]
    assert last["step"] == 30 and last["skipped_steps"] == 5
    # the logged lr is the effective one: the schedule's value times the back-off
    base = tr.model.config.lr * tr.model.config.lr_final_factor ** (29 / 30)
    assert last["lr"] == pytest.approx(0.5 * base, rel=1e-6)
    after = tr.model.state_dict()
    assert all(torch.isfinite(v.float()).all() for v in after.values())
    assert any(not torch.equal(before[k], after[k]) for k in before)  # it did train


def test_nan_gradient_is_caught_before_the_optimiser(synthetic_64, tmp_path):
    tr = _trainer(synthetic_64, tmp_path / "run", steps=12)
    p = next(tr.model.field.parameters())
    state = {"n": 0}

    def hook(grad):
        state["n"] += 1
        return grad * float("inf") if state["n"] in (4, 5) else grad

    p.register_hook(hook)
    tr.train()
    assert tr.step == 12 and tr.skipped == 2
    assert [e["what"] for e in _events(tmp_path / "run") if e["event"] == "non_finite"] == ["gradient", "gradient"]
    assert all(torch.isfinite(q).all() for q in tr.model.parameters())


def test_a_run_that_never_recovers_stops_with_a_clear_error(synthetic_64, tmp_path):
    run = tmp_path / "run"
    tr = _trainer(synthetic_64, run, steps=40, checkpoint_every=5)
    _poison_loss(tr, set(range(8, 1000)))  # diverges for good after 8 steps
    with pytest.raises(RunError) as e:
        tr.train()
    msg = str(e.value)
    assert str(run) in msg and "diverged" in msg and "10 steps in a row" in msg
    assert "step_0000005.pt" in msg and "lower learning rate" in msg
    assert tr.step == 8 and tr.skipped == 10
    assert tr.lr_scale == pytest.approx(0.5 ** 3)  # lowered after 3, 6 and 9 bad steps
    ck = torch.load(run / "checkpoints" / "step_0000005.pt", weights_only=True)  # intact, finite
    assert all(torch.isfinite(v.float()).all() for v in ck["model"].values())
    assert _events(run)[-1]["event"] == "diverged"


def test_gradients_finite_flag_reference():
    a, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([a, b], lr=0.1)
    assert bool(gradients_finite_flag(opt))  # no gradients yet
    a.grad, b.grad = torch.zeros(3), torch.tensor([1.0, 2.0])
    assert bool(gradients_finite_flag(opt))
    b.grad = torch.tensor([1.0, float("-inf")])
    assert not bool(gradients_finite_flag(opt))
    b.grad = torch.tensor([float("nan"), 0.0])
    assert not bool(gradients_finite_flag(opt))
    b.grad = torch.tensor([float("inf"), float("-inf")])  # the sum is NaN: still caught
    assert not bool(gradients_finite_flag(opt))
    b.grad = torch.tensor([3e38, -3e37])  # large but finite, and the sum stays finite
    assert bool(gradients_finite_flag(opt))
