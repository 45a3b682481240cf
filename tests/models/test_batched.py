"""Batched trials: K configs in one stack train like K separate trials, each with its own knobs."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from models.batched import (
    BatchingError,
    StackedMLP,
    StackedOptimizer,
    batch_key,
    evaluate_stack,
    train_batched,
)
from models.config import ModelConfig, TrainConfig
from models.data import DatasetSplits, load_dataset
from models.module import DropoutClassifier
from models.training import evaluate, train_model


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    # These tests check behaviour, not speed; on a shared 2-core box torch's OpenMP threads spin
    # at barriers against other processes and the module ran 10× slower with two.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> DatasetSplits:
    """scikit-learn's bundled 8×8 digits with the loader's fixed split (no download)."""
    return load_dataset("digits", data_dir=tmp_path_factory.mktemp("data"), download=False)


def _cfg(variant: str = "standard", rate: float = 0.3, **kw) -> ModelConfig:
    kw.setdefault("placements", ["hidden"])
    return ModelConfig(
        input_dim=64, num_classes=10, hidden=[64, 32], variant=variant, rates=[rate, rate], **kw
    )


def _val_acc(model, data: DatasetSplits) -> float:
    return evaluate(model, data.x_val, data.y_val)[1]


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_without_dropout_each_trial_of_a_stack_is_train_model_exactly(digits, optimizer):
    # Same seed → same initial weights and data order as train_model; with no masks to differ,
    # the stack must follow every trial's own trajectory (up to float summation order).
    model_cfgs = [_cfg("none", 0.0) for _ in range(2)]
    lr = 0.05 if optimizer == "sgd" else 3e-3
    train_cfgs = [
        TrainConfig(
            epochs=3, batch_size=100, optimizer=optimizer, lr=lr * s, weight_decay=wd, seed=s
        )
        for s, wd in [(1, 0.0), (2, 1e-2)]
    ]
    batched = train_batched(model_cfgs, train_cfgs, digits, device="cpu")
    for m, t, got in zip(model_cfgs, train_cfgs, batched, strict=True):
        want = train_model(m, t, digits, device="cpu")
        for a, b in zip(got.history, want.history, strict=True):
            assert (a.epoch, a.train_acc, a.val_acc) == pytest.approx(
                (b.epoch, b.train_acc, b.val_acc), abs=2 / len(digits.y_val)
            )
            assert a.val_loss == pytest.approx(b.val_loss, rel=1e-3)
        for p, q in zip(got.model.parameters(), want.model.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-3, atol=1e-4)
        assert got.param_count == want.param_count


@pytest.mark.parametrize("variant", ["standard", "vanilla", "gaussian", "dropconnect"])
def test_batched_accuracy_agrees_with_unbatched_training_of_same_configs(digits, variant):
    # Tolerance: on 597 validation digits, seed-to-seed spread of one config is about ±2 points,
    # so each trial may differ by 6 points and the mean of 4 by 3. A wrong update rule, mask
    # scale or eval rule costs far more (chance is 10%).
    # DropConnect at 0.6 on two sites per Linear trains erratically in 6 epochs (spread ±8
    # points between seeds), so it is compared at milder rates.
    rates = [0.0, 0.1, 0.2, 0.3] if variant == "dropconnect" else [0.0, 0.2, 0.4, 0.6]
    model_cfgs = [_cfg(variant, r) for r in rates]
    train_cfgs = [
        TrainConfig(epochs=6, batch_size=64, lr=lr, weight_decay=wd, optimizer=opt, seed=s)
        for s, (lr, wd, opt) in enumerate(
            [(3e-3, 0.0, "adam"), (2e-3, 1e-4, "adam"), (3e-3, 0.0, "adam"), (4e-3, 1e-3, "adam")]
        )
    ]
    batched = [r.history[-1].val_acc for r in train_batched(model_cfgs, train_cfgs, digits)]
    reference = [
        train_model(m, t, digits).final.val_acc for m, t in zip(model_cfgs, train_cfgs, strict=True)
    ]
    diffs = [abs(a - b) for a, b in zip(batched, reference, strict=True)]
    assert max(diffs) <= 0.06, (batched, reference)
    assert abs(sum(batched) - sum(reference)) / len(rates) <= 0.03, (batched, reference)
    # Every trial learned (vanilla at p = 0.6 learns slowest: its gradients are scaled by 0.4).
    assert min(batched) > 0.6


def test_stacked_optimizer_matches_torch_optim_per_trial():
    lrs, wds = [1e-3, 1e-2, 3e-2], [0.0, 1e-2, 0.1]
    cfgs = [
        TrainConfig(lr=lr, weight_decay=wd, momentum=0.8) for lr, wd in zip(lrs, wds, strict=True)
    ]
    for kind, torch_cls in [
        ("adam", torch.optim.Adam),
        ("adamw", torch.optim.AdamW),
        ("sgd", torch.optim.SGD),
    ]:
        gen = torch.Generator().manual_seed(1)
        stacked = torch.randn(3, 5, 4, generator=gen)
        singles = [nn.Parameter(stacked[k].clone()) for k in range(3)]
        extra = {"momentum": 0.8} if kind == "sgd" else {}
        opts = [
            torch_cls([p], lr=lr, weight_decay=wd, **extra)
            for p, lr, wd in zip(singles, lrs, wds, strict=True)
        ]
        owner = torch.arange(3).repeat_interleave(20)  # flat layout: trial k owns row k
        ours = StackedOptimizer(
            kind, stacked.view(-1), owner, [c.model_copy(update={"optimizer": kind}) for c in cfgs]
        )
        for _ in range(5):
            grad = torch.randn(3, 5, 4, generator=gen)
            ours.step(stacked.view(-1), grad.view(-1))
            for k, (p, opt) in enumerate(zip(singles, opts, strict=True)):
                p.grad = grad[k].clone()
                opt.step()
        for k in range(3):
            torch.testing.assert_close(stacked[k], singles[k].detach(), rtol=1e-5, atol=1e-6)


def test_each_trial_draws_masks_at_its_own_rate():
    rates = [0.0, 0.1, 0.5, 0.8]
    stack = StackedMLP.from_configs([_cfg("standard", r) for r in rates], seeds=[0, 1, 2, 3])
    ones = torch.ones(len(rates), 20000, 64)
    out = stack._noise(ones, stack.rates[0], torch.Generator().manual_seed(7))
    for k, p in enumerate(rates):
        dropped = (out[k] == 0).float().mean().item()
        # 1.28M draws: the binomial standard error is < 5e-4, so 0.005 is a 10-sigma band.
        assert abs(dropped - p) < 0.005, (k, p, dropped)
        kept = out[k][out[k] != 0]
        torch.testing.assert_close(kept, torch.full_like(kept, 1.0 / (1.0 - p)))


def test_gaussian_noise_variance_follows_each_trials_rate():
    rates = [0.2, 0.5, 0.7]
    stack = StackedMLP.from_configs([_cfg("gaussian", r) for r in rates], seeds=[0, 1, 2])
    out = stack._noise(torch.ones(3, 20000, 64), stack.rates[0], torch.Generator().manual_seed(3))
    for k, p in enumerate(rates):
        # σ² = p/(1−p); with 1.28M draws the variance estimate is within 1% (≈8 sigma).
        assert out[k].var().item() == pytest.approx(p / (1 - p), rel=0.01)
        assert out[k].mean().item() == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("variant", ["none", "standard", "vanilla", "gaussian", "dropconnect"])
def test_exported_trial_is_build_mlp_with_the_stack_rows_eval_function(digits, variant):
    # Every site at once, with a zero rate in one trial: the export must be exactly the network
    # build_mlp makes (its sites, its eval-time scales) for that trial's own rates.
    placements = ["input", "pre_activation", "hidden"]
    cfgs = [
        ModelConfig(
            input_dim=64,
            num_classes=10,
            hidden=[32, 16],
            variant=variant,
            placements=placements,
            rates=rates,
            input_rate=0.2,
        )
        for rates in ([0.1, 0.0], [0.5, 0.3])
    ]
    stack = StackedMLP.from_configs(cfgs, seeds=[4, 5]).eval()
    with torch.no_grad():
        rows = stack(digits.x_val)
        for k, cfg in enumerate(cfgs):
            exported = stack.export_trial(cfg, TrainConfig(), k)
            assert isinstance(exported, DropoutClassifier) and not exported.training
            torch.testing.assert_close(exported(digits.x_val), rows[k], rtol=1e-5, atol=1e-5)


def test_a_stopped_trial_freezes_while_the_others_train_on(digits):
    model_cfgs = [_cfg("standard", 0.2) for _ in range(3)]
    train_cfgs = [TrainConfig(epochs=4, batch_size=100, lr=3e-3, seed=s) for s in range(3)]
    seen: list[list[bool]] = []

    def stop_trial_1_after_first_epoch(epoch, metrics):
        seen.append([m is not None for m in metrics])
        return [False, epoch == 0, False]

    results = train_batched(model_cfgs, train_cfgs, digits, on_epoch=stop_trial_1_after_first_epoch)
    assert seen == [[True, True, True]] + [[True, False, True]] * 3
    assert [len(r.history) for r in results] == [4, 1, 4]
    assert [r.stopped_early for r in results] == [False, True, False]
    # The stopped trial's model is its epoch-0 state: re-evaluating gives its recorded accuracy.
    assert _val_acc(results[1].model, digits) == pytest.approx(results[1].history[0].val_acc)
    assert results[0].history[-1].val_acc > results[1].history[0].val_acc


def test_trials_may_have_different_epoch_budgets(digits):
    model_cfgs = [_cfg("none", 0.0) for _ in range(2)]
    train_cfgs = [TrainConfig(epochs=e, batch_size=128, seed=e) for e in (1, 3)]
    results = train_batched(model_cfgs, train_cfgs, digits)
    assert [len(r.history) for r in results] == [1, 3]
    assert not any(r.stopped_early for r in results)
    assert [m.epoch for m in results[1].history] == [0, 1, 2]


def test_trials_that_do_not_share_an_architecture_are_refused(digits):
    tc = [TrainConfig(), TrainConfig()]
    # Other widths share a padded stack; another depth does not.
    deep = ModelConfig(input_dim=64, num_classes=10, hidden=[64, 32, 8], variant="standard")
    with pytest.raises(BatchingError):
        train_batched([_cfg(), deep], tc, digits)
    assert batch_key(_cfg("rdrop"), TrainConfig()) is None
    assert batch_key(_cfg(rate=0.1), tc[0]) == batch_key(
        _cfg(rate=0.6), tc[1].model_copy(update={"lr": 0.1})
    )


def test_evaluate_stack_reports_per_trial_loss_and_accuracy(digits):
    stack = StackedMLP.from_configs([_cfg("none", 0.0)] * 2, seeds=[0, 1])
    loss, acc = evaluate_stack(stack, digits.x_val, digits.y_val)
    assert loss.shape == acc.shape == (2,)
    # Untrained 10-class nets: loss near ln 10, accuracy near chance.
    assert torch.all((loss - math.log(10)).abs() < 0.3)
    assert torch.all(acc < 0.3)


@pytest.mark.parametrize("variant", ["none", "standard", "dropconnect"])
def test_trials_of_other_widths_share_a_padded_stack_and_each_trains_its_own_network(
    digits, variant
):
    # One depth, three widths: padded to the widest and masked, each trial is its own network:
    # train_model's trial up to float summation order, dropout included (each trial draws its
    # own masks over its own widths from its own stream).
    rate = 0.0 if variant == "none" else 0.3
    model_cfgs = [
        ModelConfig(
            input_dim=64,
            num_classes=10,
            hidden=h,
            variant=variant,
            rates=[rate, rate],
            placements=["hidden"],
        )
        for h in ([8, 24], [32, 4], [16, 16])
    ]
    train_cfgs = [TrainConfig(epochs=3, batch_size=100, lr=3e-3, seed=s) for s in range(3)]
    keys = {batch_key(m, t) for m, t in zip(model_cfgs, train_cfgs, strict=True)}
    assert len(keys) == 1
    stack = StackedMLP.from_configs(model_cfgs, [t.seed for t in train_cfgs])
    assert stack.pad_mask is not None and 0 < stack.pad_mask.mean() < 1
    batched = train_batched(model_cfgs, train_cfgs, digits, device="cpu")
    for m, t, got in zip(model_cfgs, train_cfgs, batched, strict=True):
        want = train_model(m, t, digits, device="cpu")
        shapes = [p.shape for p in want.model.parameters()]
        assert [p.shape for p in got.model.parameters()] == shapes
        assert got.param_count == want.param_count
        for a, b in zip(got.history, want.history, strict=True):
            assert (a.train_acc, a.val_acc) == pytest.approx(
                (b.train_acc, b.val_acc), abs=2 / len(digits.y_val)
            )
            assert a.val_loss == pytest.approx(b.val_loss, rel=1e-3)
        for p, q in zip(got.model.parameters(), want.model.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-3, atol=1e-4)


def test_padding_stays_exactly_zero_through_training_with_weight_noise_and_decay(
    digits, monkeypatch
):
    # DropConnect masks weights and AdamW decays them: neither may move a padded weight.
    model_cfgs = [
        ModelConfig(input_dim=64, num_classes=10, hidden=h, variant="dropconnect", rates=[0.3, 0.3])
        for h in ([8, 24], [32, 4])
    ]
    train_cfgs = [
        TrainConfig(epochs=2, batch_size=100, optimizer="adamw", weight_decay=0.1, seed=s)
        for s in range(2)
    ]
    trained: list[tuple[torch.Tensor, torch.Tensor]] = []  # (flat, pad_mask) at export
    real_export = StackedMLP.export_trial

    def spy(self, *args, **kwargs):
        trained.append((self.flat.detach().clone(), self.pad_mask.clone()))
        return real_export(self, *args, **kwargs)

    monkeypatch.setattr(StackedMLP, "export_trial", spy)
    results = train_batched(model_cfgs, train_cfgs, digits, device="cpu")
    assert len(trained) == 2
    flat, mask = trained[0]
    assert (mask == 0).sum() > 0
    assert torch.count_nonzero(flat[mask == 0]) == 0
    assert torch.count_nonzero(flat[mask == 1]) > 0.9 * (mask == 1).sum()
    assert all(torch.isfinite(p).all() for r in results for p in r.model.parameters())


@pytest.mark.parametrize("variant", ["standard", "gaussian", "dropconnect"])
def test_a_trials_result_depends_on_its_seed_not_on_its_stack(digits, variant):
    # Each trial draws its masks from its own stream (the one train_model draws from) over its
    # own widths, and a trial with a zero rate at a site draws nothing there, as in its own
    # network. Before, one generator seeded from every seed in the stack served all: the same
    # trial gave .8886 in a stack of 6, .8969 alone and .8914 unbatched. DropConnect runs the
    # paper's inference at evaluation (the default Z samples).
    def cfg(rate: float, hidden: tuple[int, int] = (32, 16)) -> ModelConfig:
        return ModelConfig(
            input_dim=64,
            num_classes=10,
            hidden=list(hidden),
            variant=variant,
            placements=["input", "hidden"],
            rates=[rate, rate / 2],
            input_rate=0.1 if rate < 0.35 else 0.0,
        )

    def train(seed: int) -> TrainConfig:
        return TrainConfig(epochs=2, batch_size=64, lr=3e-3, seed=seed)

    def curve(result) -> list[tuple[float, float, float]]:
        return [(m.train_loss, m.val_loss, m.val_acc) for m in result.history]

    target = cfg(0.3)
    alone = train_batched([target], [train(7)], digits, device="cpu")[0]
    others = [cfg(0.1), cfg(0.5), cfg(0.0)]
    stacked = train_batched(
        [others[0], target, *others[1:]], [train(1), train(7), train(2), train(3)], digits
    )[1]
    # Other widths: the stack pads every layer to (48, 24) and the target keeps its own blocks.
    wider = [cfg(0.2, (48, 8)), cfg(0.0, (16, 24))]
    padded = train_batched([wider[0], target, wider[1]], [train(4), train(7), train(5)], digits)
    unbatched = train_model(target, train(7), digits, device="cpu")
    for ours, theirs in zip(curve(alone), curve(stacked), strict=True):
        # The same draws and ops; only a reduction's order over the stack's rows may differ.
        assert ours == pytest.approx(theirs, rel=1e-6)
    for other in (padded[1], unbatched):
        # Padding changes the matmuls' sizes and unbatched runs torch.optim and F.linear
        # instead of the stack's ops: the same draws, float tolerance.
        for ours, theirs in zip(alone.history, other.history, strict=True):
            assert ours.val_loss == pytest.approx(theirs.val_loss, rel=1e-5)
            assert ours.val_acc == pytest.approx(theirs.val_acc, abs=1e-6)  # the same count
