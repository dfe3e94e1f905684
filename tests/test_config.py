"""Config: presets, typed overrides, unknown keys and bad values."""
import numpy as np
import pytest
from PIL import Image

from ganforge.components import resolve
from ganforge.config import from_dict, load_preset, preset_names, to_dict
from ganforge.errors import GanforgeError


def test_presets_exist_and_validate(tmp_path):
    names = preset_names()
    assert {"digits", "ring", "grid", "folder"} <= set(names)
    for i in range(8):  # the folder preset surveys a folder of images: give it one
        Image.fromarray(np.full((16, 16), i * 30, np.uint8)).save(tmp_path / f"{i}.png")
    for n in names:
        cfg = resolve(n, [f"data.path={tmp_path}"] if n == "folder" else [])
        assert cfg.preset == n and cfg.description


def test_default_is_digits():
    assert resolve(None).data.name == "digits"


def test_override_types():
    cfg = resolve("ring", ["train.kimg=5", "optim.g_lr=1e-3", "train.compile=true", "model.prior=uniform",
                           "train.metrics=toy", "optim.g_betas=[0.0, 0.9]"])
    assert cfg.train.kimg == 5.0 and isinstance(cfg.train.kimg, float)
    assert cfg.optim.g_lr == 1e-3 and cfg.train.compile is True and cfg.model.prior == "uniform"
    assert cfg.train.metrics == ["toy"] and cfg.optim.g_betas == [0.0, 0.9]


@pytest.mark.parametrize("item,msg", [
    ("train.kimgs=5", "unknown key 'train.kimgs'; valid keys: train.kimg"),
    ("nope.x=1", "unknown key 'nope.x'"),
    ("train.batch=abc", "train.batch: expected an integer, got 'abc'"),
    ("train.batch=1.5", "expected an integer"),
    ("train.compile=maybe", "expected true or false"),
    ("train.kimg", "expected key=value"),
])
def test_bad_overrides(item, msg):
    with pytest.raises(GanforgeError, match=msg.replace("[", r"\[").replace("(", r"\(")):
        resolve("digits", [item])


@pytest.mark.parametrize("item,msg", [
    ("loss.name=vanilla", "unknown loss 'vanilla'; choose one of"),
    ("model.arch=stylegan9", "unknown model architecture"),
    ("data.name=imagenet", "unknown dataset"),
    ("model.prior=cauchy", "model.prior"),
    ("train.batch=0", "train.batch: must be > 0"),
    ("train.noise_schedule=sawtooth", "train.noise_schedule"),
    ("loss.label_smoothing=0.7", "label_smoothing"),
    ("optim.g_betas=[0.5]", "optim.g_betas"),
    ("model.pack=3", "multiple of model.pack"),
])
def test_bad_values(item, msg):
    with pytest.raises(GanforgeError, match=msg):
        resolve("digits", [item])


def test_smoothing_rejected_for_hinge():
    with pytest.raises(GanforgeError, match="not defined for the hinge loss"):
        resolve("digits", ["loss.name=hinge", "loss.label_smoothing=0.1"])


def test_noise_needs_a_window_when_it_decays():
    with pytest.raises(GanforgeError, match="train.noise_kimg"):
        resolve("digits", ["train.noise_std=0.1"])
    cfg = resolve("digits", ["train.noise_std=0.1", "train.noise_schedule=constant"])
    assert cfg.train.noise_std == 0.1


def test_unknown_preset_lists_the_presets():
    with pytest.raises(GanforgeError, match="unknown preset 'nope'; choose one of: .*digits"):
        load_preset("nope")


def test_yaml_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data: {name: ring}\nmodel: {arch: mlp}\ntrain: {kimg: 3}\n")
    cfg = resolve(str(p))
    assert cfg.data.name == "ring" and cfg.train.kimg == 3
    p.write_text("data: {name: ring}\nmodel: {archh: mlp}\n")
    with pytest.raises(GanforgeError, match="unknown key 'model.archh'"):
        resolve(str(p))
    p.write_text("data: [unclosed\n")
    with pytest.raises(GanforgeError, match="not valid YAML"):
        resolve(str(p))


def test_roundtrip():
    cfg = resolve("grid", ["train.kimg=7"])
    assert to_dict(from_dict(to_dict(cfg))) == to_dict(cfg)


def test_schedules():
    from ganforge.schedules import lr_multiplier, noise_std

    assert lr_multiplier("constant", 10, 0.0, 5000) == 1.0
    assert lr_multiplier("linear", 10, 0.0, 5000) == pytest.approx(0.5)
    assert lr_multiplier("linear", 10, 0.1, 20000) == pytest.approx(0.1)
    assert lr_multiplier("cosine", 10, 0.0, 0) == pytest.approx(1.0)
    assert lr_multiplier("cosine", 10, 0.0, 5000) == pytest.approx(0.5)
    # hold-linear: 1 until 80% of the window, then a straight line to the final factor
    assert lr_multiplier("hold-linear", 10, 0.0, 8000) == 1.0
    assert lr_multiplier("hold-linear", 10, 0.0, 9000) == pytest.approx(0.5)
    assert lr_multiplier("hold-linear", 10, 0.2, 10000) == pytest.approx(0.2)
    for sched in ("linear", "cosine", "exponential"):
        assert noise_std(sched, 0.2, 10, 0) == pytest.approx(0.2)
        assert noise_std(sched, 0.2, 10, 10000) == 0.0
        assert 0 < noise_std(sched, 0.2, 10, 5000) < 0.2
    assert noise_std("constant", 0.2, 10, 10 ** 6) == 0.2
    with pytest.raises(GanforgeError, match="optim.lr_kimg"):
        resolve("digits", ["optim.lr_schedule=linear", "optim.lr_kimg=0"])
