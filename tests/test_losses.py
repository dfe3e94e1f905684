"""Each loss's value and sign on hand-made logits (most toolkits call the non-saturating loss 'minimax': we do not)."""
import math

import pytest
import torch

from ganforge.losses import LOSSES, gradient_penalty, r1_penalty

R = torch.tensor([2.0, -1.0])   # real logits
F_ = torch.tensor([0.5, -3.0])  # fake logits


def sp(x):  # softplus, by hand
    return math.log1p(math.exp(x))


def test_registry_has_the_five_losses():
    assert set(LOSSES.names()) >= {"minimax", "nonsaturating", "wasserstein", "hinge", "least-squares"}


def test_minimax_is_the_saturating_game():
    L = LOSSES.get("minimax")
    # D: -log s(r) - log(1 - s(f)) = softplus(-r) + softplus(f)
    d = ((sp(-2.0) + sp(1.0)) / 2) + ((sp(0.5) + sp(-3.0)) / 2)
    assert L.d(R, F_, 0.0).item() == pytest.approx(d, rel=1e-6)
    # G minimises log(1 - D(G(z))) = -softplus(f): always negative, -> 0 as D rejects
    g = -(sp(0.5) + sp(-3.0)) / 2
    assert L.g(R, F_).item() == pytest.approx(g, rel=1e-6)
    assert L.g(R, F_).item() < 0
    # saturation: the gradient wrt a confidently rejected fake logit vanishes
    f = torch.tensor([-10.0], requires_grad=True)
    L.g(None, f).backward()
    assert abs(f.grad.item()) < 1e-4


def test_nonsaturating_generator_loss():
    L = LOSSES.get("nonsaturating")
    g = (sp(-0.5) + sp(3.0)) / 2  # -log D(G(z)) = softplus(-f)
    assert L.g(R, F_).item() == pytest.approx(g, rel=1e-6)
    assert L.g(R, F_).item() > 0
    f = torch.tensor([-10.0], requires_grad=True)
    L.g(None, f).backward()
    assert f.grad.item() == pytest.approx(-1.0, abs=1e-4)  # strong gradient where minimax saturates
    # D loss is the same cross-entropy as minimax
    assert L.d(R, F_, 0.0).item() == pytest.approx(LOSSES.get("minimax").d(R, F_, 0.0).item())


def test_label_smoothing_is_one_sided():
    L = LOSSES.get("nonsaturating")
    s = 0.1
    d = (((1 - s) * sp(-2.0) + s * sp(2.0)) + ((1 - s) * sp(1.0) + s * sp(-1.0))) / 2 + (sp(0.5) + sp(-3.0)) / 2
    assert L.d(R, F_, s).item() == pytest.approx(d, rel=1e-6)
    # one-sided: fake targets stay 0, so changing the fake logits moves the loss exactly as without smoothing
    F2 = torch.tensor([-1.0, 2.0])
    with_s = L.d(R, F2, s) - L.d(R, F_, s)
    without = L.d(R, F2, 0.0) - L.d(R, F_, 0.0)
    assert with_s.item() == pytest.approx(without.item(), abs=1e-6)


def test_wasserstein():
    L = LOSSES.get("wasserstein")
    assert L.d(R, F_, 0).item() == pytest.approx((0.5 - 3.0) / 2 - (2.0 - 1.0) / 2)
    assert L.g(R, F_).item() == pytest.approx(-(0.5 - 3.0) / 2)
    assert L.default_gp == 10.0


def test_hinge():
    L = LOSSES.get("hinge")
    # relu(1 - r): [0, 2] ; relu(1 + f): [1.5, 0]
    assert L.d(R, F_, 0).item() == pytest.approx((0 + 2) / 2 + (1.5 + 0) / 2)
    assert L.g(R, F_).item() == pytest.approx(-(0.5 - 3.0) / 2)


def test_least_squares():
    L = LOSSES.get("least-squares")
    d = 0.5 * ((2 - 1) ** 2 + (-1 - 1) ** 2) / 2 + 0.5 * (0.5 ** 2 + 3.0 ** 2) / 2
    assert L.d(R, F_, 0).item() == pytest.approx(d)
    assert L.g(R, F_).item() == pytest.approx(0.5 * ((0.5 - 1) ** 2 + (-3 - 1) ** 2) / 2)


@pytest.mark.parametrize("name", ["minimax", "nonsaturating", "wasserstein", "hinge", "least-squares", "relativistic"])
def test_d_loss_prefers_correct_discrimination(name):
    """Sign: D's loss is lower when it scores real high and fake low; G's loss is lower when fakes score high."""
    L = LOSSES.get(name)
    good = L.d(torch.tensor([3.0]), torch.tensor([-3.0]), 0.0)
    bad = L.d(torch.tensor([-3.0]), torch.tensor([3.0]), 0.0)
    assert good < bad
    assert L.g(torch.tensor([0.0]), torch.tensor([3.0])) < L.g(torch.tensor([0.0]), torch.tensor([-3.0]))


def test_gradient_penalty_of_a_linear_critic():
    w = torch.tensor([3.0, 4.0])  # ||grad|| = 5 everywhere -> penalty (5 - 1)^2 = 16
    D = lambda x: x @ w
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    assert gradient_penalty(D, real, fake, torch.Generator().manual_seed(0)).item() == pytest.approx(16.0)


def test_r1_penalty_of_a_quadratic():
    x = torch.tensor([[1.0, 2.0], [0.0, -1.0]], requires_grad=True)
    logits = (x ** 2).sum(1)  # grad = 2x, ||2x||^2 = 4 ||x||^2 = [20, 4]
    assert r1_penalty(logits, x).item() == pytest.approx(12.0)


def test_relativistic_pairs_real_and_fake_logits():
    """RpGAN: D minimises softplus(l_f - l_r) over index-paired real/fake, G the mirrored softplus(l_r - l_f)."""
    L = LOSSES.get("relativistic")
    assert L.g_uses_real and not L.smoothing and not L.probability
    d = (sp(0.5 - 2.0) + sp(-3.0 + 1.0)) / 2
    g = (sp(2.0 - 0.5) + sp(-1.0 + 3.0)) / 2
    assert L.d(R, F_, 0.0).item() == pytest.approx(d, rel=1e-6)
    assert L.g(R, F_).item() == pytest.approx(g, rel=1e-6)
    # only the difference matters: shifting both logits by a constant changes nothing
    assert L.d(R + 5, F_ + 5, 0.0).item() == pytest.approx(d, rel=1e-5)
    assert L.g(R - 2, F_ - 2).item() == pytest.approx(g, rel=1e-5)
    # G's gradient flows through its own logits only, and pushes them up
    f = F_.clone().requires_grad_(True)
    L.g(R, f).backward()
    assert (f.grad < 0).all()


def test_relativistic_average_against_its_formula():
    L = LOSSES.get("relativistic-average")
    assert L.g_uses_real and not L.smoothing and not L.probability
    mr, mf = R.mean().item(), F_.mean().item()
    d = sum(sp(-(r - mf)) for r in R.tolist()) / 2 + sum(sp(f - mr) for f in F_.tolist()) / 2
    g = sum(sp(-(f - mr)) for f in F_.tolist()) / 2 + sum(sp(r - mf) for r in R.tolist()) / 2
    assert L.d(R, F_, 0.0).item() == pytest.approx(d, rel=1e-6)
    assert L.g(R, F_).item() == pytest.approx(g, rel=1e-6)
    assert L.d(R + 3, F_ + 3, 0.0).item() == pytest.approx(d, rel=1e-5)  # relative: a common shift changes nothing


def test_r2_is_the_zero_centred_penalty_on_any_input():
    """R2 = E||grad_x D(x)||^2 on generated data: the same function as R1, checked against autograd by hand."""
    from ganforge.losses import r2_penalty

    x = torch.tensor([[1.0, 2.0], [0.5, -1.0], [3.0, 0.0]], requires_grad=True)
    logits = torch.sin(x).sum(1) + 0.5 * (x ** 2).sum(1)  # grad = cos(x) + x
    want = ((torch.cos(x) + x) ** 2).sum(1).mean()
    assert r2_penalty(logits, x).item() == pytest.approx(want.item(), rel=1e-6)
    assert r2_penalty(torch.ones(3) * 0 + (x * 0).sum(1) + 5.0, x).item() == 0  # a flat D: no penalty


def test_r1_r2_lazy_and_gamma_schedule_in_the_objective():
    """The D phase adds gamma/2 (R1 + R2); lazy regularisation computes them every N steps with weight x N;
    the gamma schedule scales both."""
    from ganforge.components import resolve
    from ganforge.data import build_dataset
    from ganforge.schedules import gamma_multiplier
    from ganforge.training.state import setup
    from ganforge.training.step import train_step
    from ganforge.utils.stats import Stats

    from .conftest import TINY

    assert gamma_multiplier("constant", 0, 0.1, 10 ** 9) == 1.0
    assert gamma_multiplier("linear", 10, 0.1, 5000) == pytest.approx(0.55)
    assert gamma_multiplier("cosine", 10, 0.1, 10 ** 6) == pytest.approx(0.1)
    base = TINY + ["loss.name=relativistic", "loss.r1_gamma=2.0", "loss.r2_gamma=3.0"]
    for interval in (1, 4):
        cfg = resolve("digits", base + [f"loss.reg_interval={interval}"])
        ctx = setup(cfg, build_dataset(cfg.data), torch.device("cpu"))
        stats = Stats()
        for _ in range(8):
            train_step(ctx, stats)
        assert stats._n["r1"] == stats._n["r2"] == 8 // interval  # computed on the due steps only
        assert stats._n["penalty"] == 8
    # the penalty added to D's loss is gamma/2 * (R1 + R2) x the scale the step gives it
    cfg = resolve("digits", base)
    ctx = setup(cfg, build_dataset(cfg.data), torch.device("cpu"))
    real, z = ctx.sampler.next().float() / 127.5 - 1, torch.randn(cfg.train.batch, cfg.model.z_dim)
    for scale in (1.0, 0.25, 0.0):
        stats = Stats()
        ctx.objective.d_phase(real, z, stats, reg_scale=scale)
        got = stats.read()
        want = 0.5 * 2.0 * scale * got.get("r1", 0) + 0.5 * 3.0 * scale * got.get("r2", 0)
        assert got["penalty"] == pytest.approx(want, rel=1e-5) and (scale > 0) == ("r1" in got)
