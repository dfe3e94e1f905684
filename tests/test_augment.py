"""Differentiable augmentation (DiffAugment policies, ADA's adaptive p): values, gradients, p's control law,
exact resume, and clear errors."""
import json

import pytest
import torch

import ganforge
from ganforge.augment import AUGMENTATIONS, Augment
from ganforge.training.checkpoint import list_checkpoints, load_checkpoint

from .conftest import TINY

IDENTITY_U = {"color": [0.5, 0.5, 0.5], "translation": [0.5, 0.5]}  # no brightness/saturation/contrast; no shift


def _images(b=4, c=3, h=8, w=12):
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(0)) * 2 - 1


@pytest.mark.parametrize("name", AUGMENTATIONS.names())
def test_every_policy_keeps_shape_and_passes_gradients(name):
    pol = AUGMENTATIONS.get(name)
    x = _images().requires_grad_(True)
    u = torch.rand(x.shape[0], pol.n_random, generator=torch.Generator().manual_seed(1))
    y = pol.fn(x, u)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.equal(y, pol.fn(x, u))  # deterministic given its random numbers
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", sorted(IDENTITY_U))
def test_neutral_parameters_give_the_image_back(name):
    x = _images()
    u = torch.tensor([IDENTITY_U[name]] * x.shape[0])
    assert torch.allclose(AUGMENTATIONS.get(name).fn(x, u), x, atol=1e-6)


def test_translation_shifts_whole_pixels_with_zeros():
    x = torch.arange(64.0).reshape(1, 1, 8, 8)
    s = 1  # 8 x 0.125
    u = torch.tensor([[0.99, 0.0]])  # dy = +1 (down), dx = -1 (left)
    y = AUGMENTATIONS.get("translation").fn(x, u)
    assert s == 1 and torch.equal(y[0, 0, 1:, :-1], x[0, 0, :-1, 1:])
    assert torch.all(y[0, 0, 0] == 0) and torch.all(y[0, 0, :, -1] == 0)


def test_cutout_zeroes_a_half_size_square():
    x = torch.ones(1, 2, 8, 8)
    y = AUGMENTATIONS.get("cutout").fn(x, torch.tensor([[0.5, 0.5]]))  # centred
    assert torch.equal(y[0, 0], y[0, 1]) and int((y[0, 0] == 0).sum()) == 16
    assert torch.all(y[0, :, 2:6, 2:6] == 0)


def test_color_on_grey_images_changes_brightness_and_contrast_only():
    x = _images(c=1)
    u = torch.tensor([[0.75, 0.0, 0.5]] * x.shape[0])  # +0.25 brightness, saturation irrelevant, contrast x1
    assert torch.allclose(AUGMENTATIONS.get("color").fn(x, u), x + 0.25, atol=1e-6)


def test_probability_zero_is_the_identity_and_one_is_always():
    x = _images(b=64)
    off = Augment(["translation", "cutout"], 0.0, False, 0.6, 100.0, 4, torch.device("cpu"))
    assert torch.equal(off(x, torch.Generator().manual_seed(0)), x)
    on = Augment(["cutout"], 1.0, False, 0.6, 100.0, 4, torch.device("cpu"))
    changed = (on(x, torch.Generator().manual_seed(0)) != x).flatten(1).any(1)
    assert bool(changed.all())
    half = Augment(["cutout"], 0.5, False, 0.6, 100.0, 4, torch.device("cpu"))
    changed = (half(x, torch.Generator().manual_seed(0)) != x).flatten(1).any(1).float().mean()
    assert 0.3 < float(changed) < 0.7


def test_adaptive_p_follows_the_sign_of_d_on_reals():
    a = Augment(["color"], 1.0, True, 0.6, 1.0, 4, torch.device("cpu"))  # 1 kimg from 0 to 1
    assert float(a.p) == 0.0  # ADA starts from no augmentation
    a.observe(torch.full((64,), 3.0))  # D sure that reals are real: r_t = 1 > 0.6 -> more augmentation
    a.adjust(256)
    assert float(a.p) == pytest.approx(0.256)
    a.observe(torch.tensor([1.0, -1.0, -1.0, 1.0]))  # r_t = 0 < 0.6 -> less
    a.adjust(256 + 128)
    assert float(a.p) == pytest.approx(0.128)
    a.observe(torch.full((8,), -1.0))
    a.adjust(10_000)  # a long way: clamped at 0
    assert float(a.p) == 0.0
    s = a.state_dict()
    b = Augment(["color"], 1.0, True, 0.6, 1.0, 4, torch.device("cpu"))
    b.load_state_dict(s)
    assert float(b.p) == 0.0 and b.last_clock == 10_000


AUG = ["augment.policy=[color,translation,cutout]", "augment.adaptive=true", "augment.speed_kimg=0.5",
       "augment.interval=3", "train.tick_kimg=0.112"]


def _train(out, *extra):
    return ganforge.train("digits", overrides=TINY + list(extra), out=out, progress=False)


def test_adaptive_augmentation_resumes_exactly_and_is_logged(tmp_path):
    full = _train(tmp_path / "f", *AUG, "train.kimg=0.224")
    half = _train(tmp_path / "h", *AUG, "train.kimg=0.112")  # 7 steps: the interval (3) straddles the resume
    ganforge.train(resume=half, overrides=["train.kimg=0.224"], progress=False)
    a, b = (load_checkpoint(list_checkpoints(r)[-1]) for r in (full, half))
    for name in ("G_ema", "G", "D"):
        for k in a[name]:
            assert torch.equal(a[name][k], b[name][k]), (name, k)
    assert torch.equal(a["extras"]["augment"]["p"], b["extras"]["augment"]["p"])
    assert float(a["extras"]["augment"]["p"]) > 0  # D was confident on reals from the start: p went up
    ticks = [json.loads(x) for x in (full / "log.jsonl").read_text().splitlines()]
    assert all(0 <= t["aug_p"] <= 1 and -1 <= t["d_real_sign"] <= 1 for t in ticks)


def test_fixed_augmentation_with_r1_and_a_real_using_loss_trains(tmp_path):
    run = _train(tmp_path / "r", "augment.policy=[translation]", "loss.name=relativistic", "loss.r1_gamma=1",
                 "loss.r2_gamma=1")
    ticks = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert ticks[-1]["aug_p"] == 1.0 and all(k in ticks[-1] for k in ("r1", "r2"))


@pytest.mark.parametrize("bad, message", [
    (["augment.policy=[blur]"], "augment.policy"),
    (["augment.p=1.5"], "augment.p: must be in [0, 1]"),
    (["augment.target=1"], "augment.target"),
    (["augment.speed_kimg=0"], "augment.speed_kimg"),
    (["augment.interval=0"], "augment.interval"),
])
def test_bad_augment_settings_are_clear(tmp_path, bad, message):
    with pytest.raises(ganforge.GanforgeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        _train(tmp_path / "x", *bad)


def test_augmenting_vectors_or_encoder_pairs_is_refused(tmp_path):
    with pytest.raises(ganforge.GanforgeError, match="this data is vectors"):
        ganforge.train("ring", overrides=["augment.policy=[color]", "train.kimg=0.1"], out=tmp_path / "v",
                       progress=False)
    with pytest.raises(ganforge.GanforgeError, match="model.encoder"):
        _train(tmp_path / "e", "augment.policy=[color]", "model.encoder=true")
