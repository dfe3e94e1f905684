"""Numerical checks of the claims made in docs/theory.md.

Each test names the section of docs/theory.md it backs. Densities live on a fine 1-D grid and integrals
are Riemann sums in float64, so identities hold to ~1e-9; discrete distributions are used where an
optimiser runs. numpy and torch only; the whole file takes a few seconds at most, imports included.
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
