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
