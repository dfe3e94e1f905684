"""Numerical checks of the claims made in docs/theory.md.

Each test names the section of docs/theory.md it backs. Densities live on a fine 1-D grid and integrals
are Riemann sums in float64, so identities hold to ~1e-9; discrete distributions are used where an
optimiser runs. The sections on R1 and R2, the relativistic losses, the γ schedule, the moving average, spectral
normalisation and the metrics call ganforge's public functions (`ganforge.losses.LOSSES`,
`ganforge.losses.penalties.r1_penalty`, `ganforge.schedules.gamma_multiplier`, `ganforge.training.ema.ema_beta`,
`ganforge.metrics.fid`, `.kid`, `.isc`) or torch's `spectral_norm`; precision/recall, density/coverage and
mode counts are checked on the page's own definitions, written out in numpy. numpy and torch only; the whole
file takes a few seconds at most, imports included.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

LOG2 = math.log(2.0)
LOG4 = math.log(4.0)

# A grid wide enough that every density below has < 1e-12 mass outside it.
X = np.linspace(-15.0, 15.0, 30_001)
DX = X[1] - X[0]


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """These tensors are tiny: extra intra-op threads only add synchronisation (badly so on a shared CPU)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def normal(mean: float, std: float) -> np.ndarray:
    return np.exp(-0.5 * ((X - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))


def integrate(f: np.ndarray) -> float:
    return float(np.sum(f) * DX)


def kl(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) on the grid; 0 log 0 = 0. Requires q > 0 wherever p > 0."""
    m = p > 0
    assert np.all(q[m] > 0)
    return float(np.sum(p[m] * np.log(p[m] / q[m])) * DX)


def jsd(p: np.ndarray, q: np.ndarray) -> float:
    m = 0.5 * (p + q)
    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def value(d: np.ndarray, p_data: np.ndarray, p_g: np.ndarray) -> float:
    """V(D, G) = E_{p_data}[log D] + E_{p_g}[log(1 - D)], with 0 log 0 = 0 where a density vanishes."""
    with np.errstate(divide="ignore"):
        a = np.where(p_data > 0, p_data * np.log(np.where(p_data > 0, d, 1.0)), 0.0)
        b = np.where(p_g > 0, p_g * np.log1p(-np.where(p_g > 0, d, 0.0)), 0.0)
    return integrate(a + b)


def value_at_optimum(p_data: np.ndarray, p_g: np.ndarray) -> float:
    """V(D*, G) with log D* and log(1 - D*) evaluated as log p - log(p_data + p_g) (no 1 - D* round-off)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        log_s = np.log(p_data + p_g)
        a = np.where(p_data > 0, p_data * (np.log(p_data) - log_s), 0.0)
        b = np.where(p_g > 0, p_g * (np.log(p_g) - log_s), 0.0)
    return integrate(a + b)


# p_data: a two-mode mixture; p_g: a single broad Gaussian (a typical early generator).
P_DATA = 0.5 * normal(-2.0, 0.5) + 0.5 * normal(2.0, 0.7)
P_G = normal(0.7, 1.3)


def d_star(p_data: np.ndarray, p_g: np.ndarray) -> np.ndarray:
    return p_data / (p_data + p_g)


def test_densities_are_normalised():
    assert integrate(P_DATA) == pytest.approx(1.0, abs=1e-9)
    assert integrate(P_G) == pytest.approx(1.0, abs=1e-9)


# ---------------------------------------------------------------------------------------------------
# theory.md "The optimal discriminator"


def test_pointwise_maximiser_of_a_log_y_plus_b_log_1_minus_y():
    """argmax_y a log y + b log(1 - y) on (0, 1) is a / (a + b), found here by grid search."""
    y = np.linspace(1e-6, 1 - 1e-6, 200_001)
    rng = np.random.default_rng(0)
    for a, b in rng.uniform(0.01, 5.0, size=(20, 2)):
        best = y[np.argmax(a * np.log(y) + b * np.log1p(-y))]
        assert best == pytest.approx(a / (a + b), abs=1e-5)


def test_optimal_discriminator_by_grid_search_on_gaussians():
    """At every x, the D(x) maximising V's integrand is p_data / (p_data + p_g)."""
    xs = slice(3_000, 27_001, 400)  # x in [-12, 12]: 61 points where both densities are representable
    a, b = P_DATA[xs][:, None], P_G[xs][:, None]
    y = np.linspace(1e-7, 1 - 1e-7, 100_001)[None, :]
    best = y[0, np.argmax(a * np.log(y) + b * np.log1p(-y), axis=1)]
    np.testing.assert_allclose(best, d_star(P_DATA, P_G)[xs], atol=2e-5)


def test_optimal_discriminator_by_gradient_ascent_on_free_form_d():
    """Gradient ascent on a free-form D (one logit per support point) converges to p_data / (p_data + p_g)."""
    g = torch.Generator().manual_seed(0)
    p_data = torch.rand(16, generator=g, dtype=torch.float64) + 0.05
    p_g = torch.rand(16, generator=g, dtype=torch.float64) + 0.05
    p_data, p_g = p_data / p_data.sum(), p_g / p_g.sum()
    logits = torch.zeros(16, dtype=torch.float64, requires_grad=True)
    for _ in range(500):                                    # plain full-batch gradient ascent on V
        # V = sum p_data log D + p_g log(1 - D), with log D = logsigmoid(l), log(1 - D) = logsigmoid(-l)
        v = (p_data * torch.nn.functional.logsigmoid(logits)
             + p_g * torch.nn.functional.logsigmoid(-logits)).sum()
        (grad,) = torch.autograd.grad(v, logits)
        with torch.no_grad():
            logits += 30.0 * grad
    d = torch.sigmoid(logits).detach()
    torch.testing.assert_close(d, p_data / (p_data + p_g), atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------------
# theory.md "The generator's objective is the Jensen-Shannon divergence"


def test_value_at_optimal_d_is_2_jsd_minus_log4():
    v = value(d_star(P_DATA, P_G), P_DATA, P_G)
    assert v == pytest.approx(value_at_optimum(P_DATA, P_G), abs=1e-12)
    j = jsd(P_DATA, P_G)
    assert 0.0 < j < LOG2
    assert v == pytest.approx(2 * j - LOG4, abs=1e-9)


def test_value_at_optimal_d_for_several_generators():
    for mean, std in [(0.0, 1.0), (-3.0, 0.3), (2.0, 0.7), (4.0, 1.5)]:
        p_g = normal(mean, std)
        assert value_at_optimum(P_DATA, p_g) == pytest.approx(2 * jsd(P_DATA, p_g) - LOG4, abs=1e-9)


def test_global_minimum_is_minus_log4_at_p_g_equals_p_data():
    d = d_star(P_DATA, P_DATA)
    np.testing.assert_allclose(d, 0.5)
    assert value(d, P_DATA, P_DATA) == pytest.approx(-LOG4, abs=1e-9)
    assert value(d_star(P_DATA, P_G), P_DATA, P_G) > -LOG4


def test_optimal_d_beats_any_other_d():
    v_star = value(d_star(P_DATA, P_G), P_DATA, P_G)
    rng = np.random.default_rng(1)
    logit = np.log(P_DATA / P_G)
    for _ in range(20):
        d = 1 / (1 + np.exp(-(logit + rng.normal(0, 0.3) + 0.3 * np.sin(rng.uniform(0.5, 3) * X))))
        assert value(d, P_DATA, P_G) < v_star


def _central_difference(f, t: float, h: float = 1e-4) -> float:
    return (f(t + h) - f(t - h)) / (2 * h)


def test_generator_gradient_at_fixed_optimal_d_is_gradient_of_2_jsd():
    """Envelope theorem: with D held at D*_{theta0}, d/dtheta E_{p_theta}[log(1 - D*)] = d/dtheta 2 JSD."""
    theta0, std = 0.7, 1.3
    d = d_star(P_DATA, normal(theta0, std))
    lhs = _central_difference(lambda t: integrate(normal(t, std) * np.log1p(-d)), theta0)
    rhs = _central_difference(lambda t: 2 * jsd(P_DATA, normal(t, std)), theta0)
    assert abs(lhs) > 1e-3
    assert lhs == pytest.approx(rhs, rel=1e-5)


def test_nonsaturating_gradient_at_fixed_optimal_d_is_kl_minus_2_jsd():
    """Arjovsky & Bottou (2017), Thm 2.5: d/dtheta E[-log D*] = d/dtheta [KL(p_g || p_data) - 2 JSD]."""
    theta0, std = 0.7, 1.3
    d = d_star(P_DATA, normal(theta0, std))
    lhs = _central_difference(lambda t: integrate(normal(t, std) * -np.log(d)), theta0)
    rhs = _central_difference(lambda t: kl(normal(t, std), P_DATA) - 2 * jsd(normal(t, std), P_DATA), theta0)
    assert abs(lhs) > 1e-2
    assert lhs == pytest.approx(rhs, rel=1e-5)


# ---------------------------------------------------------------------------------------------------
# theory.md "Saturation, and the non-saturating loss"


def test_logit_forms_of_the_log_sigmoid_terms():
    l = torch.linspace(-10, 10, 201, dtype=torch.float64)
    torch.testing.assert_close(torch.log(torch.sigmoid(l)), -torch.nn.functional.softplus(-l), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(torch.log1p(-torch.sigmoid(l)), -torch.nn.functional.softplus(l), rtol=1e-9, atol=1e-12)


def test_saturating_vs_nonsaturating_gradient_at_a_confidently_rejected_sample():
    l = torch.tensor([-20.0, -10.0, -5.0, 0.0, 5.0], dtype=torch.float64, requires_grad=True)
    saturating = -torch.nn.functional.softplus(l)           # log(1 - sigmoid(l)), G minimises it
    (g_sat,) = torch.autograd.grad(saturating.sum(), l)
    nonsaturating = torch.nn.functional.softplus(-l)        # -log sigmoid(l), G minimises it
    (g_ns,) = torch.autograd.grad(nonsaturating.sum(), l)
    s = torch.sigmoid(l.detach())
    torch.testing.assert_close(g_sat, -s)                   # d/dl log(1 - sigma(l)) = -sigma(l)
    torch.testing.assert_close(g_ns, -(1 - s))              # d/dl -log sigma(l) = -(1 - sigma(l))
    assert (g_sat < 0).all() and (g_ns < 0).all()           # same direction: both push the logit up
    # D rejects the sample with logit -20 (D(G(z)) = 2e-9): the saturating gradient has vanished.
    assert abs(g_sat[0]) < 3e-9
    assert abs(g_ns[0]) > 1 - 3e-9
    assert abs(g_ns[0] / g_sat[0]) > 1e8


def test_naive_float32_saturating_loss_overflows_but_logit_form_does_not():
    l = torch.tensor([40.0])                                # D is fooled completely
    assert torch.isinf(torch.log(1 - torch.sigmoid(l))).all()
    assert torch.isfinite(-torch.nn.functional.softplus(l)).all()


# ---------------------------------------------------------------------------------------------------
# theory.md "One-sided label smoothing"


def test_label_smoothing_optimal_discriminator():
    """Targets alpha (real) and beta (fake): D* = (alpha p_data + beta p_g) / (p_data + p_g)."""
    y = np.linspace(1e-7, 1 - 1e-7, 200_001)
    for pd, pg in [(0.3, 0.1), (0.05, 0.4), (0.2, 0.2)]:
        for alpha, beta in [(0.9, 0.0), (0.9, 0.1), (0.8, 0.0)]:
            obj = (pd * (alpha * np.log(y) + (1 - alpha) * np.log1p(-y))
                   + pg * (beta * np.log(y) + (1 - beta) * np.log1p(-y)))
            assert y[np.argmax(obj)] == pytest.approx((alpha * pd + beta * pg) / (pd + pg), abs=1e-5)


# ---------------------------------------------------------------------------------------------------
# theory.md "Least squares"


def test_least_squares_optimal_d_and_pearson_chi2():
    """Mao et al. (2017): D* = (b p_data + a p_g)/(p_data + p_g); with b - c = 1, b - a = 2 the extended
    objective E_data[(D* - c)^2] + E_g[(D* - c)^2] = int (p_data - p_g)^2 / (p_data + p_g) = 2 chi2(p_g || m)."""
    xs = slice(3_000, 27_001, 400)
    y = np.linspace(-1.5, 1.5, 150_001)[None, :]
    a, b, c = -1.0, 1.0, 0.0
    pd, pg = P_DATA[xs][:, None], P_G[xs][:, None]
    best = y[0, np.argmin(0.5 * pd * (y - b) ** 2 + 0.5 * pg * (y - a) ** 2, axis=1)]
    d = (b * P_DATA + a * P_G) / (P_DATA + P_G)
    np.testing.assert_allclose(best, d[xs], atol=2e-5)
    extended = integrate(P_DATA * (d - c) ** 2 + P_G * (d - c) ** 2)
    m = 0.5 * (P_DATA + P_G)
    chi2_g_m = integrate((P_G - m) ** 2 / m)
    assert extended == pytest.approx(integrate((P_DATA - P_G) ** 2 / (P_DATA + P_G)), rel=1e-9)
    assert extended == pytest.approx(2 * chi2_g_m, rel=1e-9)


def test_least_squares_generator_step_is_not_a_chi2_gradient_step():
    """Not zero-sum: G's gradient with D fixed at D* differs from the gradient of the chi2 value."""
    theta0, std, a, b, c = 0.7, 1.3, -1.0, 1.0, 0.0

    def d_ls(t):
        p = normal(t, std)
        return (b * P_DATA + a * p) / (P_DATA + p)

    d0 = d_ls(theta0)
    g_step = _central_difference(lambda t: integrate(normal(t, std) * (d0 - c) ** 2), theta0)
    chi2 = _central_difference(lambda t: integrate((P_DATA - normal(t, std)) ** 2 / (P_DATA + normal(t, std))),
                               theta0)
    assert abs(g_step - chi2) > 0.1 * abs(chi2)


def test_least_squares_0_1_1_coding_is_minimised_at_p_g_equals_p_data():
    """a=0, b=1, c=1: D* = p_data/(p_data+p_g); extended objective int p_g^2/(p_data+p_g) >= 1/2, = at p_g = p_data."""
    def extended(p_g):
        d = P_DATA / (P_DATA + p_g)
        return integrate(P_DATA * (d - 1) ** 2 + p_g * (d - 1) ** 2)

    assert extended(P_DATA) == pytest.approx(0.5, abs=1e-9)
    assert extended(P_G) == pytest.approx(integrate(P_G ** 2 / (P_DATA + P_G)), rel=1e-9)
    for mean, std in [(0.0, 1.0), (-2.0, 0.5), (2.0, 0.7), (0.7, 1.3)]:
        assert extended(normal(mean, std)) > 0.5


# ---------------------------------------------------------------------------------------------------
# theory.md "Hinge loss"


def test_hinge_optimal_risk_is_two_minus_two_total_variation():
    """min_t p max(0, 1 - t) + q max(0, 1 + t) = 2 min(p, q); integrated: 2 - 2 TV(p_data, p_g)."""
    t = np.linspace(-3, 3, 60_001)
    for p, q in [(0.3, 0.1), (0.05, 0.4), (0.2, 0.2)]:
        risk = p * np.maximum(0, 1 - t) + q * np.maximum(0, 1 + t)
        assert risk.min() == pytest.approx(2 * min(p, q), abs=1e-12)
    tv = 0.5 * integrate(np.abs(P_DATA - P_G))
    d = np.sign(P_DATA - P_G)
    risk = integrate(P_DATA * np.maximum(0, 1 - d) + P_G * np.maximum(0, 1 + d))
    assert risk == pytest.approx(2 - 2 * tv, abs=1e-9)


# ---------------------------------------------------------------------------------------------------
# theory.md "Wasserstein distance" and "Instance noise"


def _uniform(lo: float, hi: float) -> np.ndarray:
    p = ((X >= lo) & (X < hi)).astype(float)
    return p / integrate(p)


def _w1(p: np.ndarray, q: np.ndarray) -> float:
    """In 1-D, W1 = int |F_p - F_q| dx."""
    return integrate(np.abs(np.cumsum(p) * DX - np.cumsum(q) * DX))


def test_jsd_of_disjoint_supports_is_log2_whatever_the_distance():
    for shift in [1.5, 2.0, 4.0, 8.0]:
        p, q = _uniform(-1.0, 0.0), _uniform(shift - 1.0, shift)
        assert np.all(p * q == 0)
        assert jsd(p, q) == pytest.approx(LOG2, abs=1e-12)
        # the value at the optimal D is then 2 log 2 - log 4 = 0: flat, so no gradient for G
        assert value_at_optimum(p, q) == pytest.approx(0.0, abs=1e-12)


def test_wasserstein_of_disjoint_supports_tracks_the_distance():
    for shift in [1.5, 2.0, 4.0, 8.0]:
        assert _w1(_uniform(-1.0, 0.0), _uniform(shift - 1.0, shift)) == pytest.approx(shift, abs=2e-3)


def test_kantorovich_rubinstein_dual_is_attained_by_a_1_lipschitz_critic():
    """sup over 1-Lipschitz f of E_p f - E_q f = W1; in 1-D the optimal f has slope sign(F_q - F_p)."""
    p, q = P_DATA, P_G
    fp, fq = np.cumsum(p) * DX, np.cumsum(q) * DX
    f = np.cumsum(np.sign(fq - fp)) * DX                    # slope +-1: 1-Lipschitz
    dual = integrate(f * (p - q))
    assert dual == pytest.approx(_w1(p, q), rel=1e-3)
    rng = np.random.default_rng(2)
    for _ in range(20):                                     # other 1-Lipschitz critics do no better
        slope = np.clip(rng.normal(size=X.size).cumsum() / 30, -1, 1)
        g = np.cumsum(slope) * DX
        assert integrate(g * (p - q)) <= dual + 1e-9


def test_instance_noise_makes_jsd_informative():
    """Point masses at 0 and theta never overlap (JSD = log 2 for all theta != 0). Convolved with N(0, s^2)
    they overlap: JSD < log 2 and it decreases smoothly and strictly to 0 as theta -> 0."""
    s = 0.5
    thetas = np.linspace(3.0, 0.0, 61)
    noisy = np.array([jsd(normal(0.0, s), normal(t, s)) for t in thetas])
    assert np.all(noisy < LOG2)
    assert np.all(np.diff(noisy) < 0)                      # strictly decreasing as the distributions approach
    assert noisy[-1] == pytest.approx(0.0, abs=1e-12)
    # smooth: no jumps between neighbouring thetas (step 0.05), and a non-zero slope away from 0
    assert np.max(np.abs(np.diff(noisy))) < 0.05
    slope = np.gradient(noisy, thetas)
    assert np.all(slope[:-1] > 1e-3)
    # less noise -> closer to the uninformative log 2 (which is why the noise is annealed only gradually)
    assert jsd(normal(0.0, 0.1), normal(2.0, 0.1)) > jsd(normal(0.0, 0.5), normal(2.0, 0.5))
    assert jsd(normal(0.0, 0.1), normal(2.0, 0.1)) == pytest.approx(LOG2, abs=1e-6)


def _smoothed_uniform(lo: float, hi: float, s: float) -> np.ndarray:
    """Density of U[lo, hi) + N(0, s^2): (Phi((x - lo)/s) - Phi((x - hi)/s)) / (hi - lo)."""
    x = torch.from_numpy(X)
    return ((torch.special.ndtr((x - lo) / s) - torch.special.ndtr((x - hi) / s)) / (hi - lo)).numpy()


def test_instance_noise_on_disjoint_uniforms():
    """Disjoint supports made overlapping by adding the same Gaussian noise to both distributions."""
    s = 0.4
    for shift in [1.5, 3.0]:
        p, q = _uniform(-1.0, 0.0), _uniform(shift - 1.0, shift)
        assert jsd(p, q) == pytest.approx(LOG2, abs=1e-12)
        ps, qs = _smoothed_uniform(-1.0, 0.0, s), _smoothed_uniform(shift - 1.0, shift, s)
        assert integrate(ps) == pytest.approx(1.0, abs=1e-9)
        assert integrate(p * q) == 0.0
        assert integrate(np.minimum(ps, qs)) > 1e-3          # the noisy versions share mass
        assert jsd(ps, qs) < LOG2 - 1e-3
    near = jsd(_smoothed_uniform(-1.0, 0.0, s), _smoothed_uniform(0.5, 1.5, s))
    far = jsd(_smoothed_uniform(-1.0, 0.0, s), _smoothed_uniform(2.0, 3.0, s))
    assert near < far < LOG2


# ---------------------------------------------------------------------------------------------------
# theory.md "The optimal discriminator" (its logit) and "Saturation" (the ratio of the two gradients)


def test_optimal_logit_is_the_log_density_ratio():
    xs = slice(3_000, 27_001, 400)
    d = d_star(P_DATA, P_G)[xs]
    np.testing.assert_allclose(np.log(d) - np.log1p(-d), np.log(P_DATA[xs]) - np.log(P_G[xs]), rtol=1e-9, atol=1e-9)


def test_nonsaturating_to_saturating_gradient_ratio_is_exp_minus_l():
    l = torch.tensor([-20.0, -5.0, 0.0, 3.0], dtype=torch.float64)
    ratio = (1 - torch.sigmoid(l)) / torch.sigmoid(l)                  # |dL_ns/dl| / |dL_sat/dl|
    torch.testing.assert_close(ratio, torch.exp(-l), rtol=1e-12, atol=0)
    assert 4.8e8 < ratio[0] < 4.9e8                                      # "about 5·10⁸ at l = −20"


# ---------------------------------------------------------------------------------------------------
# theory.md "Instance noise" (scale invariance) and "The Wasserstein-1 distance" (K-Lipschitz critics)


def test_instance_noise_jsd_depends_only_on_theta_over_s():
    values = [jsd(normal(0.0, s), normal(theta, s)) for theta, s in [(0.5, 0.25), (1.0, 0.5), (2.0, 1.0), (3.0, 1.5)]]
    np.testing.assert_allclose(values, values[0], rtol=1e-8)
    assert jsd(normal(0.0, 0.5), normal(1.0, 0.5)) > jsd(normal(0.0, 1.0), normal(1.0, 1.0))  # theta/s 2 vs 1


def test_k_lipschitz_critics_give_k_times_w1():
    p, q = P_DATA, P_G
    fp, fq = np.cumsum(p) * DX, np.cumsum(q) * DX
    f = np.cumsum(np.sign(fq - fp)) * DX                     # the optimal 1-Lipschitz critic
    for k in (0.5, 2.0, 10.0):
        assert integrate(k * f * (p - q)) == pytest.approx(k * _w1(p, q), rel=1e-3)


# ---------------------------------------------------------------------------------------------------
# theory.md "Least squares": the 0-1 coding's integrand p_g² / (p_data + p_g)


def test_least_squares_0_1_1_integrand_derivatives():
    """h(g) = g²/(a + g): h'(g) = 1 − a²/(a + g)², h''(g) = 2a²/(a + g)³ ≥ 0 (a = p_data, g = p_g)."""
    def h(a, g):
        return g * g / (a + g)

    e = 1e-4
    for a, g in [(0.3, 0.1), (0.05, 0.4), (0.2, 0.2), (1.0, 0.01)]:
        d1 = (h(a, g + e) - h(a, g - e)) / (2 * e)
        d2 = (h(a, g + e) - 2 * h(a, g) + h(a, g - e)) / (e * e)
        assert d1 == pytest.approx(1 - a * a / (a + g) ** 2, rel=1e-6)
        assert d2 == pytest.approx(2 * a * a / (a + g) ** 3, rel=1e-4)
        assert d2 > 0


# ---------------------------------------------------------------------------------------------------
# theory.md "R1 gradient penalty" and "Exponential moving average of the generator", on the Dirac-GAN of
# Mescheder et al. (2018): data at 0, a generator that is a point mass at theta, a linear discriminator
# l(x) = psi·x, and V = log σ(l(0)) + log(1 − σ(l(theta))). D ascends V − (γ/2)·psi² (R1: the gradient of l at the
# real point is psi), G descends V. The equilibrium is theta = psi = 0. With relativistic=True the same example under
# RpGAN ("Zero-centred penalties on both sides"): D's loss softplus(psi·theta) is −V up to log 2, and G minimises
# softplus(−psi·theta); r2 adds R2, (r2/2)·psi² (the gradient of l at the generated point is psi too).


def _dirac_gan(gamma: float, alternating: bool, steps: int = 3000, h: float = 0.1, beta: float | None = None,
               r2: float = 0.0, relativistic: bool = False, start: tuple[float, float] = (1.0, 1.0)):
    """Returns (final distance to the equilibrium, smallest distance over the last 500 steps, EMA of theta)."""
    (theta, psi), last = start, []
    theta_ema = theta
    for _ in range(steps):
        s = 1 / (1 + math.exp(-psi * theta))
        d_psi = -s * theta - (gamma + r2) * psi               # dV/dpsi − (gamma + r2)·psi
        if alternating:
            psi = psi + h * d_psi
            s = 1 / (1 + math.exp(-psi * theta))
            # minimax: dV/dtheta = −σ(psi·theta)·psi, G descends V;
            # RpGAN: d/dtheta softplus(−psi·theta) = −σ(−psi·theta)·psi, G descends it
            theta = theta + h * ((1 - s) if relativistic else s) * psi
        else:
            psi, theta = psi + h * d_psi, theta + h * ((1 - s) if relativistic else s) * psi
        if beta is not None:
            theta_ema = beta * theta_ema + (1 - beta) * theta
        last = (last + [math.hypot(theta, psi)])[-500:]
    return math.hypot(theta, psi), min(last), theta_ema


def test_r1_penalty_is_the_squared_gradient_norm_on_real_data():
    from ganforge.losses.penalties import r1_penalty

    w = torch.tensor([0.6, -0.8, 2.0], dtype=torch.float64)          # linear D: gradient w everywhere
    x = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    assert r1_penalty(x @ w, x).item() == pytest.approx(float(w @ w), rel=1e-6)
    # zero-centred: a discriminator that is flat on the data pays nothing
    assert r1_penalty((x * 0).sum(1) + 3.0, x).item() == 0.0


def test_dirac_gan_circles_or_drifts_without_r1_and_converges_with_it():
    dist, closest, _ = _dirac_gan(gamma=0.0, alternating=False)
    assert dist > 2.0                                         # simultaneous updates spiral away (start: 1.41)
    dist, closest, _ = _dirac_gan(gamma=0.0, alternating=True)
    assert 1.0 < closest <= dist < 2.0                        # alternating updates circle, never approach 0
    for alternating in (False, True):
        dist, _, _ = _dirac_gan(gamma=1.0, alternating=alternating)
        assert dist < 1e-6                                    # with R1 both converge to the equilibrium


def test_ema_half_life_is_ema_kimg():
    from ganforge.training.ema import ema_beta

    for batch, ema_kimg in [(64, 10.0), (256, 5.0), (512, 0.5), (32, 0.128)]:
        steps = ema_kimg * 1000 / batch                       # generator steps that show ema_kimg thousand images
        assert ema_beta(batch, ema_kimg, 0.0, 10**9) ** steps == pytest.approx(0.5, rel=1e-12)
    assert ema_beta(64, 0.0, 0.05, 10**6) == 0.0              # ema_kimg = 0: G_ema = G
    # ramp-up: the half-life is at most rampup × the images seen so far (here 0.05 × 10,000 = 500 images)
    assert ema_beta(64, 10.0, 0.05, 10_000) == pytest.approx(0.5 ** (64 / 500), rel=1e-12)
    assert ema_beta(64, 10.0, 0.05, 10**7) == ema_beta(64, 10.0, 0.0, 0)   # late in training the cap is inactive


def test_ema_of_an_orbiting_generator_sits_near_the_equilibrium():
    from ganforge.training.ema import ema_beta

    beta = ema_beta(1, 0.5, 0.0, 10**9)                       # half-life 500 steps; one orbit takes ~125
    dist, closest, theta_ema = _dirac_gan(gamma=0.0, alternating=True, steps=5000, beta=beta)
    assert closest > 1.0                                      # G itself keeps circling at radius > 1
    assert abs(theta_ema) < 0.1                               # its average is within 0.1 of the equilibrium


# ---------------------------------------------------------------------------------------------------
# theory.md "The relativistic game: RpGAN and RaGAN". ganforge's losses are called through the registry;
# `relativistic-average` is checked against the page's formulas once it is registered.

F64 = torch.float64


def _softplus(t):
    return torch.nn.functional.softplus(t)


def _relativistic_losses() -> list[str]:
    from ganforge.losses import LOSSES

    return [name for name in ("relativistic", "relativistic-average") if name in LOSSES]


def _ragan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The page's RaGAN loss for the side whose logits a should exceed the mean of b's: D is (real, fake), G swaps."""
    return _softplus(-(a - b.mean())).mean() + _softplus(b - a.mean()).mean()


def test_rpgan_pairs_real_and_fake_by_index():
    from ganforge.losses import LOSSES

    L = LOSSES.get("relativistic")
    real = torch.tensor([0.0, 10.0], dtype=F64)
    fake = torch.tensor([10.0, 0.0], dtype=F64)
    paired = _softplus(fake - real).mean()                    # the pairs (0, 10) and (10, 0)
    torch.testing.assert_close(L.d(real, fake, 0.0), paired, rtol=1e-12, atol=0)
    torch.testing.assert_close(L.g(real, fake), _softplus(real - fake).mean(), rtol=1e-12, atol=0)
    every_pair = _softplus(fake[None, :] - real[:, None]).mean()
    assert abs(float(paired - every_pair)) > 1.0              # pairing by index is not comparing all pairs


def test_ragan_matches_the_formulas_on_the_page():
    from ganforge.losses import LOSSES

    if "relativistic-average" not in LOSSES:
        pytest.skip("loss 'relativistic-average' is not registered yet (RaGAN is being added to ganforge.losses)")
    L = LOSSES.get("relativistic-average")
    g = torch.Generator().manual_seed(3)
    real, fake = 2 * torch.randn(9, generator=g, dtype=F64) + 1, 3 * torch.randn(9, generator=g, dtype=F64)
    # L_D = E_x f(−(l(x) − E l(G(z)))) + E_z f(l(G(z)) − E l(x));  L_G: real and fake swapped
    torch.testing.assert_close(L.d(real, fake, 0.0), _ragan(real, fake), rtol=1e-12, atol=0)
    torch.testing.assert_close(L.g(real, fake), _ragan(fake, real), rtol=1e-12, atol=0)
    assert not L.probability and not L.smoothing and L.g_uses_real


def test_relativistic_losses_depend_only_on_logit_differences():
    from ganforge.losses import LOSSES
    from ganforge.losses.penalties import r1_penalty

    g = torch.Generator().manual_seed(0)
    real, fake = 3 * torch.randn(16, generator=g, dtype=F64), 3 * torch.randn(16, generator=g, dtype=F64) - 1
    for name in _relativistic_losses():
        L = LOSSES.get(name)
        assert not L.probability                              # σ(l) alone is not a probability for these losses
        assert not L.smoothing and L.g_uses_real              # no labels to smooth; G's step needs D(real)
        for c in (-50.0, -1.5, 0.3, 7.0, 1e3):                # l -> l + c on real and fake alike changes nothing
            torch.testing.assert_close(L.d(real + c, fake + c, 0.0), L.d(real, fake, 0.0), rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(L.g(real + c, fake + c), L.g(real, fake), rtol=1e-12, atol=1e-12)
        r, f = real.clone().requires_grad_(True), fake.clone().requires_grad_(True)
        for loss in (L.d(r, f, 0.0), L.g(r, f)):              # d/dc at c = 0: the logit gradients sum to zero
            gr, gf = torch.autograd.grad(loss, (r, f))
            assert abs(float(gr.sum() + gf.sum())) < 1e-15
            assert float(gr.abs().sum()) > 1e-2
    ns = LOSSES.get("nonsaturating")                          # the standard loss does see the level
    assert abs(float(ns.d(real + 1, fake + 1, 0.0) - ns.d(real, fake, 0.0))) > 0.1
    w = torch.tensor([0.6, -0.8, 2.0], dtype=F64)             # and the penalties do not: they see ∇_x l only
    x = torch.randn(5, 3, generator=g, dtype=F64).requires_grad_(True)
    assert r1_penalty(x @ w + 4.0, x).item() == pytest.approx(r1_penalty(x @ w, x).item(), rel=1e-14)


def test_relativistic_losses_at_p_g_equals_p_data_are_minimised_by_a_constant_logit():
    """With x and y drawn from the same distribution, RpGAN's L_D = ½ E[f(Δ) + f(−Δ)] ≥ log 2 and RaGAN's L_D ≥ 2 log 2
    (Jensen), with equality exactly for a constant logit; G's loss is then the same value."""
    from ganforge.losses import LOSSES

    t = np.linspace(-30, 30, 6001)
    pair_sum = np.logaddexp(0, t) + np.logaddexp(0, -t)                 # f(t) + f(−t)
    np.testing.assert_allclose(pair_sum, np.log(2 + np.exp(t) + np.exp(-t)), rtol=1e-13)
    assert pair_sum.min() == pytest.approx(LOG4, abs=1e-15) and np.all(pair_sum[t != 0] > LOG4)   # min at t = 0 only
    n = 12                                                    # p_data = p_g = uniform on n points, logits l
    g = torch.Generator().manual_seed(1)
    for name in _relativistic_losses():
        L = LOSSES.get(name)
        floor = LOG2 if name == "relativistic" else 2 * LOG2

        def pair(l):
            # RpGAN: every (x, y) pair once, so the minibatch mean is the expectation; RaGAN: the means over one
            # batch are the expectations, so the same n logits stand for both distributions
            return (l.repeat_interleave(n), l.repeat(n)) if name == "relativistic" else (l, l)

        for c in (-4.0, 0.0, 2.5):
            const = torch.full((n,), c, dtype=F64)
            assert float(L.d(*pair(const), 0.0)) == pytest.approx(floor, abs=1e-12)
            assert float(L.g(*pair(const))) == pytest.approx(floor, abs=1e-12)
        for scale in (0.01, 0.3, 1.0, 5.0):
            l = scale * torch.randn(n, generator=g, dtype=F64)
            assert float(L.d(*pair(l), 0.0)) > floor + 1e-6


def _rpgan_value(l: dict, reals: list, fakes: list) -> float:
    """(1/n) Σ_i log σ(l(x_i) − l(y_i)): minus RpGAN's L_D, the i-th generated point against the i-th real one."""
    return sum(math.log(1 / (1 + math.exp(-(l[x] - l[y])))) for x, y in zip(reals, fakes)) / len(reals)


def _rpgan_every_pair_value(l: dict, reals: list, fakes: list) -> float:
    return sum(_rpgan_value(l, [x], [y]) for x in reals for y in fakes) / (len(reals) * len(fakes))


def _separable_value(reals: list, fakes: list) -> float:
    """max_D (1/n) Σ log D(x_i) + (1/n) Σ log(1 − D(y_i)), D free on the points: D* = a/(a + b) at each point."""
    n, v = len(reals), 0.0
    for p in set(reals) | set(fakes):
        a, b = reals.count(p) / n, fakes.count(p) / n
        v += (a * math.log(a / (a + b)) if a else 0.0) + (b * math.log(b / (a + b)) if b else 0.0)
    return v


def test_two_point_landscape_separable_game_has_a_barrier_and_rpgan_does_not():
    reals = ["x1", "x2"]
    dropped, on_the_way, covered = ["x1", "x1"], ["x1", "p"], ["x1", "x2"]
    # the separable game (JS-GAN): the generator must climb to leave the dropped mode
    sep = [_separable_value(reals, f) for f in (dropped, on_the_way, covered)]
    assert sep[0] == pytest.approx(LOG2 - 1.5 * math.log(3), abs=1e-15)               # −0.955
    assert sep[1] == pytest.approx(-LOG2, abs=1e-15)                                  # −0.693
    assert sep[2] == pytest.approx(-LOG4, abs=1e-15)                                  # −1.386
    assert sep[1] > sep[0] > sep[2]
    d = np.linspace(1e-6, 1 - 1e-6, 200_001)                  # D*(x_1) with both generated points on x_1: 1/3
    assert d[np.argmax(0.5 * np.log(d) + np.log1p(-d))] == pytest.approx(1 / 3, abs=1e-5)
    assert round(sep[0], 3) == -0.955 and round(sep[1], 3) == -0.693 and round(sep[2], 3) == -1.386
    # RpGAN: a pair with y_i = x_i gives log σ(0) whatever l is; any other pair can be won outright (l gap of 100)
    win = {"x1": 0.0, "x2": 50.0, "p": -50.0}
    rp = [_rpgan_value(win, reals, f) for f in (dropped, on_the_way, covered)]
    assert rp[0] == pytest.approx(-0.5 * LOG2, abs=1e-15)                             # −0.347
    assert rp[1] == pytest.approx(-0.5 * LOG2, abs=1e-15)                             # no climb on the way
    assert rp[2] == pytest.approx(-LOG2, abs=1e-15)                                   # −0.693
    assert round(rp[0], 3) == -0.347 and round(rp[2], 3) == -0.693
    rng = np.random.default_rng(0)                            # ... and no discriminator does better than that
    for _ in range(2000):
        l = dict(zip(["x1", "x2", "p"], rng.normal(0, 20, size=3)))
        for f, best in zip((dropped, on_the_way, covered), rp):
            assert _rpgan_value(l, reals, f) <= best + 1e-12
    # comparing every generated point with every real one instead: a barrier again (−¼ log 2 on the way)
    every = [_rpgan_every_pair_value(win, reals, f) for f in (dropped, on_the_way)]
    assert every[0] == pytest.approx(-0.5 * LOG2, abs=1e-15)
    assert every[1] == pytest.approx(-0.25 * LOG2, abs=1e-15)
    for _ in range(2000):
        l = dict(zip(["x1", "x2", "p"], rng.normal(0, 20, size=3)))
        assert _rpgan_every_pair_value(l, reals, on_the_way) <= every[1] + 1e-12
    cover_every = {"x1": 0.0, "x2": 0.0, "p": 0.0}            # covered, every pair: at best −log 2 (a constant l)
    assert _rpgan_every_pair_value(cover_every, reals, covered) == pytest.approx(-LOG2, abs=1e-15)


# ---------------------------------------------------------------------------------------------------
# theory.md "Zero-centred penalties on both sides: R1 and R2", on the Dirac-GAN under RpGAN (helper above)


def _dirac_rpgan_field(v: torch.Tensor, gamma_total: float) -> torch.Tensor:
    """(θ', ψ') = (−∂L_G/∂θ, −∂L_D/∂ψ) with L_D = f(ψθ) + (γ₁ + γ₂)/2·ψ², L_G = f(−ψθ)."""
    theta, psi = v[0], v[1]
    return torch.stack([torch.sigmoid(-psi * theta) * psi, -torch.sigmoid(psi * theta) * theta - gamma_total * psi])


def test_dirac_rpgan_gradients_are_ganforge_s_losses_and_penalties():
    from ganforge.losses import LOSSES
    from ganforge.losses.penalties import r1_penalty

    L = LOSSES.get("relativistic")
    g1, g2 = 0.3, 0.7
    for theta, psi in [(1.0, 1.0), (-0.7, 2.0), (0.3, -1.2)]:
        ps = torch.tensor(psi, dtype=F64, requires_grad=True)
        x_real = torch.zeros(1, 1, dtype=F64, requires_grad=True)
        x_fake = torch.full((1, 1), theta, dtype=F64, requires_grad=True)
        real_logits, fake_logits = ps * x_real[:, 0], ps * x_fake[:, 0]
        loss_d = (L.d(real_logits, fake_logits, 0.0) + 0.5 * g1 * r1_penalty(real_logits, x_real)
                  + 0.5 * g2 * r1_penalty(fake_logits, x_fake))
        (d_psi,) = torch.autograd.grad(loss_d, ps)
        s = 1 / (1 + math.exp(-psi * theta))
        assert float(d_psi) == pytest.approx(s * theta + (g1 + g2) * psi, rel=1e-6)   # r1_penalty: float32
        th = torch.tensor(theta, dtype=F64, requires_grad=True)
        (d_theta,) = torch.autograd.grad(L.g(torch.zeros(1, dtype=F64), psi * th.reshape(1)), th)
        assert float(d_theta) == pytest.approx(-(1 - s) * psi, rel=1e-12)
        field = _dirac_rpgan_field(torch.tensor([theta, psi], dtype=F64), g1 + g2)
        torch.testing.assert_close(field, torch.stack([-d_theta, -d_psi]), rtol=1e-6, atol=1e-12)


def test_dirac_rpgan_jacobian_eigenvalues_and_step_sizes():
    origin = torch.zeros(2, dtype=F64)
    j = torch.autograd.functional.jacobian(lambda v: _dirac_rpgan_field(v, 0.0), origin)
    torch.testing.assert_close(j, torch.tensor([[0.0, 0.5], [-0.5, 0.0]], dtype=F64))
    lam = torch.linalg.eigvals(j)
    torch.testing.assert_close(lam.real, torch.zeros(2, dtype=F64), atol=1e-15, rtol=0)
    torch.testing.assert_close(lam.imag.abs(), torch.full((2,), 0.5, dtype=F64))             # ±i/2
    for h in (0.01, 0.1, 1.0):                                # no step size converges: |1 + hλ|² = 1 + h²/4
        radius = torch.linalg.eigvals(torch.eye(2, dtype=F64) + h * j).abs().max()
        assert float(radius) ** 2 == pytest.approx(1 + h * h / 4, rel=1e-12)
    gamma = 0.1                                               # R1 and R2, γ each: λ = −γ ± i·sqrt(¼ − γ²)
    j = torch.autograd.functional.jacobian(lambda v: _dirac_rpgan_field(v, 2 * gamma), origin)
    lam = torch.linalg.eigvals(j)
    torch.testing.assert_close(lam.real, torch.full((2,), -gamma, dtype=F64))
    torch.testing.assert_close(lam.imag.abs(), torch.full((2,), math.sqrt(0.25 - gamma ** 2), dtype=F64))
    for h in (0.1, 0.5, 0.79, 0.81, 1.0):                     # |1 + hλ|² = 1 − 2hγ + h²/4: below 1 iff h < 8γ
        radius = float(torch.linalg.eigvals(torch.eye(2, dtype=F64) + h * j).abs().max())
        assert radius ** 2 == pytest.approx(1 - 2 * h * gamma + h * h / 4, rel=1e-12)
        assert (radius < 1) == (h < 8 * gamma)


def test_dirac_rpgan_energy_decays_at_fourth_order_in_continuous_time():
    """d/dt (θ² + ψ²) = 2θψ·(σ(−θψ) − σ(θψ)) = −2θψ·tanh(θψ/2) ≤ 0 without penalties."""
    g = torch.Generator().manual_seed(2)
    for v in 2 * torch.randn(20, 2, generator=g, dtype=F64):
        dv = _dirac_rpgan_field(v, 0.0)
        u = float(v[0] * v[1])
        assert float(2 * (v * dv).sum()) == pytest.approx(-2 * u * math.tanh(u / 2), rel=1e-12, abs=1e-15)
        assert float(2 * (v * dv).sum()) <= 0


def test_dirac_rpgan_cycles_without_penalties_and_converges_with_r1_and_r2():
    for start in [(0.01, 0.01), (3.0, 3.0)]:                  # distance 0.014 and 4.2 from the equilibrium
        dist, closest, _ = _dirac_gan(0.0, alternating=False, relativistic=True, start=start, steps=20_000)
        assert 0.44 < closest <= dist < 0.45                  # the same cycle, from inside and from outside
    dist, _, _ = _dirac_gan(0.1, alternating=False, relativistic=True, r2=0.1)
    assert dist < 1e-10                                       # R1 + R2, γ = 0.1 each, h = 0.1 < 8γ
    assert _dirac_gan(0.2, alternating=False, relativistic=True)[0] == dist   # linear D: R1 alone, weight γ₁ + γ₂
    # per step the distance shrinks by |1 + hλ| = sqrt(1 − 2hγ + h²/4) near the equilibrium
    assert 0.5 < dist / (math.sqrt(2) * (1 - 0.02 + 0.0025) ** (3000 / 2)) < 2


def test_r1_leaves_the_slope_at_a_distant_fake_free_and_r2_pulls_it_to_zero():
    """l(x) = ψ₁·k(x) + ψ₂·k(x − θ), k(u) = u·exp(−u²/(2s²)): slope ψ₁ at the data (0) and ψ₂ at the generated point
    (θ = 4), to within e^(−128). Gradient steps on R1 shrink ψ₁ only; R2 shrinks ψ₂, which is what drives G."""
    from ganforge.losses import LOSSES
    from ganforge.losses.penalties import r1_penalty

    s, theta, gamma, h = 0.25, 4.0, 1.0, 0.1

    def l(x, psi):
        def k(u):
            return u * torch.exp(-u * u / (2 * s * s))
        return (psi[0] * k(x) + psi[1] * k(x - theta)).sum(1)

    def penalties(psi):
        x_real = torch.zeros(1, 1, dtype=F64, requires_grad=True)
        x_fake = torch.full((1, 1), theta, dtype=F64, requires_grad=True)
        return r1_penalty(l(x_real, psi), x_real), r1_penalty(l(x_fake, psi), x_fake)

    def g_gradient(psi):                                      # ∂/∂θ of RpGAN's L_G = f(l(0) − l(θ)) at θ = 4
        th = torch.full((1, 1), theta, dtype=F64, requires_grad=True)
        (grad,) = torch.autograd.grad(LOSSES.get("relativistic").g(l(torch.zeros(1, 1, dtype=F64), psi).detach(),
                                                                  l(th, psi.detach())), th)
        return float(grad)

    psi0 = torch.tensor([1.0, 1.0], dtype=F64)
    r1, r2 = penalties(psi0)
    assert r1.item() == pytest.approx(1.0, rel=1e-7) and r2.item() == pytest.approx(1.0, rel=1e-7)  # float32
    assert g_gradient(psi0) == pytest.approx(-0.5, rel=1e-12)  # −σ(l(0) − l(θ))·ψ₂ with l(0) = l(θ) = 0
    final = {}
    for name, use in (("R1", (1, 0)), ("R2", (0, 1)), ("R1+R2", (1, 1))):
        psi = psi0.clone()
        for _ in range(100):                                  # D descends (γ/2)·(penalty); no adversarial term
            p = psi.clone().requires_grad_(True)
            r1, r2 = penalties(p)
            (grad,) = torch.autograd.grad(0.5 * gamma * (use[0] * r1 + use[1] * r2), p)
            psi = psi - h * grad
        final[name] = psi
    decay = (1 - h * gamma) ** 100                            # 0.9^100 ≈ 2.7e-5
    # (r1_penalty works in float32; ψ₂ under R1 alone stays exactly 1: its gradient is below e^(−128))
    torch.testing.assert_close(final["R1"], torch.tensor([decay, 1.0], dtype=F64), rtol=1e-6, atol=0)
    torch.testing.assert_close(final["R2"], torch.tensor([1.0, decay], dtype=F64), rtol=1e-6, atol=0)
    torch.testing.assert_close(final["R1+R2"], torch.tensor([decay, decay], dtype=F64), rtol=1e-6, atol=0)
    assert float(final["R1"][1]) == 1.0 and float(final["R2"][0]) == 1.0
    assert g_gradient(final["R1"]) == pytest.approx(-0.5, rel=1e-12)       # R1 alone: G's push unchanged
    assert g_gradient(final["R2"]) == pytest.approx(-0.5 * decay, rel=1e-6)  # R2: shrunk by the same factor


# ---------------------------------------------------------------------------------------------------
# theory.md "Lazy regularisation": a fixed quadratic L(w) = ½ (w − a)ᵀA(w − a), penalty R(w) = ½ wᵀBw

_QA = np.array([[2.0, 0.5], [0.5, 1.0]])
_QB = np.array([[1.5, 0.0], [0.0, 0.5]])
_Qa = np.array([1.0, -2.0])


def _lazy_gradient(w: np.ndarray, k: int, n: int, phase: int = 0) -> np.ndarray:
    """Step k's gradient: the penalty only on every n-th step (k ≡ phase mod n), with weight n."""
    return _QA @ (w - _Qa) + (n if k % n == phase else 0) * (_QB @ w)


def test_lazy_regularisation_has_the_regular_gradient_over_a_window_and_in_expectation():
    rng = np.random.default_rng(0)
    for n in (1, 4, 16):
        for w in rng.normal(size=(5, 2)):
            regular = _QA @ (w - _Qa) + _QB @ w
            window = sum(_lazy_gradient(w, k, n) for k in range(n))                       # parameters held fixed
            np.testing.assert_allclose(window, n * regular, rtol=1e-12)
            for k in range(n):                                                            # average over the phase
                mean = sum(_lazy_gradient(w, k, n, phase) for phase in range(n)) / n
                np.testing.assert_allclose(mean, regular, rtol=1e-12, atol=1e-15)


def test_lazy_regularisation_is_off_by_an_amount_proportional_to_the_step_size():
    """Gradient descent: the regular iteration converges to w* = (A + B)⁻¹Aa exactly; the lazy one (N = 4) ends on a
    4-cycle whose mean is off w* by an amount proportional to h."""
    w_star = np.linalg.solve(_QA + _QB, _QA @ _Qa)

    def run(h: float, n: int, steps: int = 4000) -> np.ndarray:
        w, path = np.zeros(2), []
        for k in range(steps):
            w = w - h * _lazy_gradient(w, k, n)
            path.append(w)
        return np.array(path)

    errors = []
    for h in (0.1, 0.05, 0.025):
        assert np.linalg.norm(run(h, 1)[-1] - w_star) < 1e-12
        lazy = run(h, 4)
        np.testing.assert_allclose(lazy[-1], lazy[-5], atol=1e-12)                      # a 4-cycle
        errors.append(np.linalg.norm(lazy[-4:].mean(0) - w_star))
    assert 1.8 < errors[0] / errors[1] < 2.3 and 1.8 < errors[1] / errors[2] < 2.3     # halving h halves it
    assert errors[-1] < 0.02


# ---------------------------------------------------------------------------------------------------
# theory.md "Annealing the penalty weight"


def test_cosine_gamma_schedule_reproduces_r3gan_cifar10():
    """R3GAN's CIFAR-10 script: γ from 0.05 to 0.005 along half a cosine over 2·10⁷ images, then constant.
    ganforge: loss.gamma_schedule=cosine, r1_gamma = r2_gamma = 0.05, gamma_final = 0.1, gamma_kimg = 20000."""
    try:
        from ganforge.schedules import gamma_multiplier
    except ImportError:
        pytest.skip("ganforge.schedules.gamma_multiplier (loss.gamma_schedule) is not available yet")
    base, final, total = 0.05, 0.005, 2e7
    for nimg in np.linspace(0, 3e7, 61):
        t = min(nimg / total, 1.0)
        r3gan = base + (1 - 0.5 * (1 + math.cos(math.pi * t))) * (final - base)
        assert base * gamma_multiplier("cosine", 20_000, 0.1, int(nimg)) == pytest.approx(r3gan, rel=1e-12)
    assert base * gamma_multiplier("cosine", 20_000, 0.1, 10**9) == pytest.approx(final, rel=1e-12)   # 10x lower
    assert gamma_multiplier("linear", 100, 0.1, 50_000) == pytest.approx(0.55, rel=1e-12)   # 1 + (0.1 − 1)·½
    assert gamma_multiplier("constant", 0, 0.1, 10**9) == 1.0


# ---------------------------------------------------------------------------------------------------
# theory.md "Spectral normalisation": where the 1-Lipschitz bound holds and where it does not


def _sn(layer: torch.nn.Module, iterations: int = 200) -> torch.nn.Module:
    """torch's spectral_norm, its power iteration run to convergence, then frozen (eval mode)."""
    layer = torch.nn.utils.parametrizations.spectral_norm(layer)
    with torch.no_grad():
        for _ in range(iterations):                           # one power-iteration step per training-mode call
            layer.parametrizations.weight[0](layer.parametrizations.weight.original)
    return layer.eval()


def _opnorm(f, shape) -> float:
    """Largest singular value of the Jacobian of f at 0 (= the Lipschitz constant of a linear f)."""
    j = torch.autograd.functional.jacobian(lambda v: f(v.view(shape)).flatten(), torch.zeros(math.prod(shape)))
    return float(torch.linalg.matrix_norm(j, 2))


def test_spectral_norm_bounds_a_plain_chain_by_one():
    torch.manual_seed(0)
    net = torch.nn.Sequential(_sn(torch.nn.Linear(8, 32)), torch.nn.LeakyReLU(0.2), _sn(torch.nn.Linear(32, 32)),
                              torch.nn.ReLU(), _sn(torch.nn.Linear(32, 1)))
    for layer in (net[0], net[2], net[4]):
        assert float(torch.linalg.matrix_norm(layer.weight.detach(), 2)) == pytest.approx(1.0, abs=1e-5)
    x = torch.randn(256, 8, requires_grad=True)
    (grad,) = torch.autograd.grad(net(x).sum(), x)
    assert grad.norm(dim=1).max() <= 1 + 1e-5
    y = torch.randn(256, 8)
    with torch.no_grad():
        assert ((net(x) - net(y)).abs().squeeze(1) <= (x - y).norm(dim=1) * (1 + 1e-5)).all()


def test_spectral_norm_power_iteration_lags_behind_weight_changes():
    """sigma is estimated as uᵀWv with unit u, v, which is at most the true sigma: W / estimate can exceed 1."""
    torch.manual_seed(0)
    layer = _sn(torch.nn.Linear(32, 32, bias=False)).train()
    w = layer.parametrizations.weight.original
    with torch.no_grad():                                     # a large update in a new direction
        a, b = torch.randn(32), torch.randn(32)
        w += 3 * torch.linalg.matrix_norm(w, 2) * torch.outer(a / a.norm(), b / b.norm())
    norms = []
    for _ in range(100):                                      # training-mode forward passes: one iteration each
        layer.train()
        layer(torch.zeros(1, 32))
        norms.append(float(torch.linalg.matrix_norm(layer.eval().weight.detach(), 2)))
    assert norms[0] > 1.1                                     # right after the change: well above 1
    assert min(norms) >= 1 - 1e-5                             # never below 1: the estimate underestimates
    assert norms[-1] == pytest.approx(1.0, abs=1e-4)          # the iteration catches up


def test_residual_block_of_normalised_layers_can_be_2_lipschitz():
    torch.manual_seed(0)
    lin = torch.nn.Linear(16, 16, bias=False)
    with torch.no_grad():
        a = torch.randn(16, 16)
        lin.weight.copy_(a @ a.T)                             # symmetric PSD: top singular vector = top eigenvector
    lin = _sn(lin)
    assert _opnorm(lin, (1, 16)) == pytest.approx(1.0, abs=1e-5)
    assert _opnorm(lambda x: x + lin(x), (1, 16)) == pytest.approx(2.0, abs=1e-5)   # x + f(x): 1 + Lip(f)


def test_global_sum_pool_multiplies_the_bound_by_sqrt_of_the_positions():
    c, h, w = 3, 4, 4
    assert _opnorm(lambda x: x.sum(dim=(2, 3)), (1, c, h, w)) == pytest.approx(math.sqrt(h * w), rel=1e-6)
    x, eps = torch.randn(1, c, h, w), 0.01                    # a change of eps at every position of a channel
    delta = torch.zeros(1, c, h, w)
    delta[:, 0] = eps
    change = ((x + delta).sum(dim=(2, 3)) - x.sum(dim=(2, 3))).norm()
    assert float(change) == pytest.approx(h * w * eps, rel=1e-4)                    # moves the output by H·W·eps
    assert float(change) == pytest.approx(math.sqrt(h * w) * float(delta.norm()), rel=1e-4)
    assert _opnorm(lambda x: torch.nn.functional.avg_pool2d(x, 2), (1, 1, 4, 4)) == pytest.approx(0.5, rel=1e-6)


def test_convolution_lipschitz_can_exceed_the_reshaped_kernel_norm():
    """Miyato et al. normalise the kernel reshaped to out × (in·k·k); the convolution's own norm can be up to
    (k/stride) times that, because every input value enters up to (k/stride)² output positions."""
    conv = torch.nn.Conv2d(1, 1, 3, 1, 1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)                                # reshaped kernel: a row of nine ones, sigma = 3
    conv = _sn(conv)
    assert float(torch.linalg.matrix_norm(conv.weight.detach().reshape(1, -1), 2)) == pytest.approx(1.0, abs=1e-6)
    lip = _opnorm(conv, (1, 1, 16, 16))
    assert lip == pytest.approx((1 + 2 * math.cos(math.pi / 17)) ** 2 / 3, rel=1e-5)  # 2.93 on a 16x16 image
    assert 2.9 < lip <= 3.0
    dcgan = torch.nn.Conv2d(1, 1, 4, 2, 1, bias=False)        # DCGAN's 4x4 stride-2 layer: up to 2x
    with torch.no_grad():
        dcgan.weight.fill_(0.25)                              # reshaped kernel: sixteen values 0.25, sigma = 1
    assert 1.9 < _opnorm(dcgan, (1, 1, 16, 16)) <= 2.0


def test_batch_norm_can_scale_by_far_more_than_one():
    bn = torch.nn.BatchNorm1d(1).eval()
    with torch.no_grad():
        bn.running_var.fill_(1e-4)                            # a feature with a small spread
    assert _opnorm(bn, (1, 1)) == pytest.approx(1 / math.sqrt(1e-4 + bn.eps), rel=1e-5)   # about 95


# ---------------------------------------------------------------------------------------------------
# theory.md "Mode collapse and packing"


def _tv_packed(p: np.ndarray, q: np.ndarray, m: int) -> float:
    """Total variation between the m-fold products p^m and q^m of two distributions on a finite set."""
    pm, qm = p, q
    for _ in range(m - 1):
        pm, qm = np.outer(pm, p).ravel(), np.outer(qm, q).ravel()
    return 0.5 * float(np.abs(pm - qm).sum())


def test_packing_amplifies_the_distance_to_a_collapsed_generator_more():
    """Ten equally likely modes. One generator drops a mode; the other is a little off on every mode. Both are at
    total variation 0.1 from the data, but packing separates the collapsed one faster (Lin et al., 2018)."""
    p = np.full(10, 0.1)
    collapsed = np.r_[0.0, np.full(9, 1 / 9)]
    spread = np.tile([0.12, 0.08], 5)
    assert _tv_packed(p, collapsed, 1) == pytest.approx(0.1) and _tv_packed(p, spread, 1) == pytest.approx(0.1)
    for m in (2, 3, 4):
        assert _tv_packed(p, collapsed, m) == pytest.approx(1 - 0.9 ** m)   # 0.19, 0.271, 0.344
        assert _tv_packed(p, collapsed, m) > _tv_packed(p, spread, m) + 0.05


# ---------------------------------------------------------------------------------------------------
# theory.md "Fréchet Inception Distance (FID)"


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def test_frechet_distance_is_the_squared_2_wasserstein_distance_between_gaussians():
    from ganforge.metrics.fid import frechet_distance

    # 1-D: W2² = (m1 − m2)² + (s1 − s2)², here also by the quantile coupling ∫ (F⁻¹(u) − G⁻¹(u))² du
    u = torch.linspace(0.5e-5, 1 - 0.5e-5, 100_000, dtype=torch.float64)
    z = torch.special.ndtri(u)
    for (m1, s1), (m2, s2) in [((0.0, 1.0), (1.0, 1.0)), ((0.5, 2.0), (-1.0, 0.5))]:
        fd = frechet_distance(np.array([m1]), np.array([[s1 ** 2]]), np.array([m2]), np.array([[s2 ** 2]]))
        assert fd == pytest.approx((m1 - m2) ** 2 + (s1 - s2) ** 2, rel=1e-9)
        assert fd == pytest.approx(float((((m1 + s1 * z) - (m2 + s2 * z)) ** 2).mean()), rel=1e-3)
    # 3-D, non-commuting covariances: the formula equals the cost E‖x − T(x)‖² of the coupling x -> T(x) that
    # moves N(0, S1) onto N(0, S2), T = S1^-½ (S1^½ S2 S1^½)^½ S1^-½ (the optimal transport map)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    s1, s2 = a @ a.T + 0.1 * np.eye(3), b @ b.T + 0.1 * np.eye(3)
    r1 = _psd_sqrt(s1)
    r1_inv = np.linalg.inv(r1)
    t = r1_inv @ _psd_sqrt(r1 @ s2 @ r1) @ r1_inv
    np.testing.assert_allclose(t @ s1 @ t.T, s2, rtol=1e-9, atol=1e-9)              # T pushes S1 onto S2
    cost = float(np.trace((np.eye(3) - t) @ s1 @ (np.eye(3) - t).T))
    mu1, mu2 = rng.normal(size=3), rng.normal(size=3)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(float((mu1 - mu2) @ (mu1 - mu2)) + cost, rel=1e-9)


def test_fid_is_biased_upwards_and_the_bias_shrinks_with_n_and_depends_on_the_generator():
    from ganforge.metrics.fid import fid_from_features

    d, g = 16, torch.Generator().manual_seed(0)

    def mean_fid(n: int, scale: float, draws: int = 10) -> float:
        return float(np.mean([fid_from_features(torch.randn(n, d, generator=g, dtype=torch.float64),
                                                 scale * torch.randn(n, d, generator=g, dtype=torch.float64))
                               for _ in range(draws)]))

    same = [mean_fid(n, 1.0) for n in (50, 200, 1000)]       # p_g = p_data: the true FID is 0
    assert same[0] > same[1] > same[2] > 0
    # a generator with twice the spread: true FID = d·(2 − 1)² = 16; its bias differs from the first one's
    wide = [mean_fid(n, 2.0) - d for n in (50, 200, 1000)]
    assert wide[0] > wide[1] > wide[2] > 0
    assert wide[0] > 1.5 * same[0]


def test_covariance_is_rank_deficient_when_n_is_at_most_the_dimension():
    from ganforge.metrics.fid import feature_stats

    for n, d in [(20, 64), (64, 64), (100, 64)]:
        _, sigma = feature_stats(torch.randn(n, d, generator=torch.Generator().manual_seed(n), dtype=torch.float64))
        assert np.linalg.matrix_rank(sigma) == min(n - 1, d)


# ---------------------------------------------------------------------------------------------------
# theory.md "Kernel Inception Distance (KID)"


def test_kid_is_the_unbiased_mmd_with_the_cubic_kernel():
    from ganforge.metrics.kid import kid_from_features

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 8)), rng.normal(0.3, 1.2, size=(30, 8))
    k = lambda a, b: (a @ b.T / 8 + 1) ** 3                  # noqa: E731  k(x, y) = (xᵀy / d + 1)³
    n = len(x)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    mmd = ((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
           - 2 * kxy.sum() / n ** 2)
    # one subset of all n items: the subset is a permutation, and MMD² does not depend on the order
    got = kid_from_features(torch.from_numpy(x), torch.from_numpy(y), subsets=1, subset_size=n)["kid"]
    assert got == pytest.approx(mmd, rel=1e-10)


def test_kid_is_unbiased_in_n_and_can_be_negative_where_fid_is_biased():
    from ganforge.metrics.fid import fid_from_features
    from ganforge.metrics.kid import kid_from_features

    g = torch.Generator().manual_seed(1)
    d = 8

    def draws(n: int, shift: float, count: int) -> tuple[np.ndarray, np.ndarray]:
        kid, fid = [], []
        for _ in range(count):
            x = torch.randn(n, d, generator=g, dtype=torch.float64)
            y = torch.randn(n, d, generator=g, dtype=torch.float64) + shift
            kid.append(kid_from_features(x, y, subsets=1, subset_size=n)["kid"])
            fid.append(fid_from_features(x, y))
        return np.array(kid), np.array(fid)

    kid, fid = draws(20, 0.0, 400)                           # same distribution: the true value of both is 0
    assert abs(kid.mean()) < 3 * kid.std() / math.sqrt(len(kid))
    assert (kid < 0).mean() > 0.3                             # single values are often slightly negative
    assert fid.mean() > 10 * fid.std() / math.sqrt(len(fid))  # FID's plug-in estimate sits well above 0
    small, _ = draws(10, 0.5, 400)                            # different distributions, two sample sizes
    large, _ = draws(200, 0.5, 40)
    se = math.sqrt(small.var() / len(small) + large.var() / len(large))
    assert abs(small.mean() - large.mean()) < 4 * se          # same expectation at N = 10 and N = 200
    assert small.std() > 3 * large.std()                      # but far noisier at small N


# ---------------------------------------------------------------------------------------------------
# theory.md "Inception Score (IS)"


def test_inception_score_range_and_what_it_cannot_see():
    from ganforge.metrics.isc import is_from_logits

    c = 1008
    one_per_class = torch.full((2 * c, c), -50.0, dtype=torch.float64)
    one_per_class[torch.arange(2 * c), torch.arange(2 * c) % c] = 50.0   # two copies of one sharp image per class
    assert is_from_logits(one_per_class, splits=1)["is"] == pytest.approx(c, rel=1e-9)   # the maximum, C
    one_class = torch.zeros(100, c, dtype=torch.float64)
    one_class[:, 0] = 100.0
    assert is_from_logits(one_class, splits=1)["is"] == pytest.approx(1.0, abs=1e-9)    # confident, no variety
    assert is_from_logits(torch.zeros(100, c, dtype=torch.float64), splits=1)["is"] == pytest.approx(1.0)  # unsure
    logits = 5 * torch.randn(500, c, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert 1.0 <= is_from_logits(logits, splits=1)["is"] <= c
    # it never sees real data (the function takes none) and not the variety inside a class: the two copies per
    # class above could be one image repeated, and the score is already the maximum.


# ---------------------------------------------------------------------------------------------------
# theory.md "Precision and recall", "Density and coverage" and "Mode counts": the definitions on the page, in
# numpy (Euclidean k-NN balls on small 2-D sets)


def _kth_nn_radius(a: np.ndarray, k: int) -> np.ndarray:
    dist = np.linalg.norm(a[:, None] - a[None], axis=-1)
    return np.sort(dist, axis=1)[:, k]                        # column 0 is the point itself


def _inside(points: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """[len(points), len(centres)]: point j inside ball i."""
    return np.linalg.norm(points[:, None] - centres[None], axis=-1) <= radii[None]


def test_precision_and_recall_are_inflated_by_outliers():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(200, 2))
    poor = rng.normal((25.0, 0.0), 0.1, size=(100, 2))       # samples nowhere near the data

    def precision(real, fake):
        return float(_inside(fake, real, _kth_nn_radius(real, 3)).any(1).mean())

    def recall(real, fake):
        return float(_inside(real, fake, _kth_nn_radius(fake, 3)).any(1).mean())

    assert precision(real, poor) == 0.0
    assert precision(np.r_[real, [[50.0, 0.0]]], poor) == 1.0      # one far real outlier accepts them all
    half = real[real[:, 0] > 0][:150]                               # a generator that covers half the data
    assert recall(real, half) < 0.75
    assert recall(real, np.r_[half, [[-30.0, 0.0]]]) == 1.0         # one generated outlier: full "recall"


def test_density_and_coverage_expectations_when_p_g_equals_p_data():
    """Naeem et al. (2020): E[density] = 1 and E[coverage] = 1 − Π_{i=1..k} (N − i)/(M + N − i) when p_g = p_data."""
    rng = np.random.default_rng(0)
    n = m = 200
    k = 5
    dens, cov = [], []
    for _ in range(40):
        real, fake = rng.normal(size=(n, 2)), rng.normal(size=(m, 2))
        inside = _inside(fake, real, _kth_nn_radius(real, k))         # [M, N]
        dens.append(inside.sum() / (k * m))
        cov.append(inside.any(0).mean())
    expected_cov = 1 - math.prod((n - i) / (m + n - i) for i in range(1, k + 1))
    assert np.mean(dens) == pytest.approx(1.0, abs=0.03)
    assert np.mean(cov) == pytest.approx(expected_cov, abs=0.01)
    assert 0.96 < expected_cov < 0.98                                 # "close to 1"
    # density is not bounded by 1: samples that crowd where many real neighbourhoods overlap score above it
    real = rng.normal(size=(n, 2))
    radii = _kth_nn_radius(real, k)
    grid = np.stack(np.meshgrid(np.linspace(-3, 3, 61), np.linspace(-3, 3, 61)), -1).reshape(-1, 2)
    spot = grid[_inside(grid, real, radii).sum(1).argmax()]
    crowded = spot + 1e-3 * rng.normal(size=(m, 2))
    assert _inside(crowded, real, radii).sum() / (k * m) > 1.5


def test_mode_counts_grow_with_the_number_of_samples():
    """PacGAN's ring rule: nearest of 8 modes, high quality within 3 std. A generator that puts 0.2% of its
    samples on one mode is credited with it in almost every 2,500-sample draw, in few 100-sample draws."""
    rng = np.random.default_rng(0)
    angles = 2 * np.pi * np.arange(8) / 8
    modes, std = np.stack([np.cos(angles), np.sin(angles)], 1), 0.01
    weights = np.r_[0.002, np.full(7, 0.998 / 7)]

    def mode_count(n: int) -> int:
        x = modes[rng.choice(8, n, p=weights)] + std * rng.normal(size=(n, 2))
        dist = np.linalg.norm(x[:, None] - modes[None], axis=-1)
        nearest, hq = dist.argmin(1), dist.min(1) <= 3 * std
        return len(set(nearest[hq]))

    few, many = np.mean([mode_count(100) for _ in range(200)]), np.mean([mode_count(2500) for _ in range(50)])
    assert few == pytest.approx(7 + 1 - 0.998 ** 100, abs=0.1)        # 7.18 expected
    assert many > 7.95


# ---- 7.9 differentiable augmentation ----------------------------------------------------------------------

def _flip_push(q: np.ndarray, p: float) -> np.ndarray:
    """T#q for T = mirror with probability p, on a distribution over 4 positions (mirror: reverse the order)."""
    return (1 - p) * q + p * q[::-1]


def test_random_flip_is_invertible_except_at_one_half():
    q = np.array([0.1, 0.2, 0.3, 0.4])
    for p in (0.0, 0.3, 0.8):
        tq = _flip_push(q, p)
        m = np.array([[1 - p, p], [p, 1 - p]])
        a, b = np.linalg.solve(m, np.stack([tq, tq[::-1]]))  # the system of section 7.9
        assert np.allclose(a, q) and np.allclose(b, q[::-1])
        assert np.linalg.det(m) == pytest.approx(1 - 2 * p)
    # at p = 1/2 a distribution and its mirror image are indistinguishable after augmentation
    assert np.allclose(_flip_push(q, 0.5), _flip_push(q[::-1], 0.5)) and not np.allclose(q, q[::-1])


def test_augmenting_only_reals_moves_the_optimum_to_the_augmented_data():
    """D* = p_data_aug / (p_data_aug + p_g): the value 2 JSD - log 4 is minimal at p_g = T#p_data, not p_data."""
    data = np.array([0.7, 0.1, 0.1, 0.1])
    aug = _flip_push(data, 0.3)

    def value(pg):
        d = aug / (aug + pg)
        return float(np.sum(aug * np.log(d)) + np.sum(pg * np.log(1 - d)))

    assert value(aug) == pytest.approx(-math.log(4))
    assert value(data) > value(aug) + 1e-3
