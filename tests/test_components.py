"""Components carry their own options: a plugin registers a dataset, a model family, a loss, an optimiser and a
metric, each with an option of its own, from outside the package, and trains with all of them through the CLI
(`--import`). Also: allowed values come from the registries, and artefacts of other versions still load."""
from __future__ import annotations

import json
import textwrap
import warnings

import numpy as np
import pytest

import ganforge
from ganforge.components import describe_components, resolve
from ganforge.errors import GanforgeError
from ganforge.models import MODELS, PRIORS
from ganforge.optim import OPTIMIZERS
from ganforge.schedules import LR_SCHEDULES, NOISE_SCHEDULES

from .conftest import TINY, run_cli

PLUGIN = textwrap.dedent('''
    """A plugin: one new file, one registry entry per component, each with an option of its own."""
    from dataclasses import dataclass

    import torch
    from torch import nn

    from ganforge.data import DATASETS, Data
    from ganforge.losses import LOSSES, AdversarialLoss
    from ganforge.metrics import METRICS, MetricSpec
    from ganforge.models import MODELS, ModelFamily
    from ganforge.optim import OPTIMIZERS


    @dataclass
    class BlobOptions:
        count: int = 256        # how many points the blob has
        spread: float = 0.5     # std of the blob around (3, 3)


    @DATASETS.register("blob", options=BlobOptions, doc="a Gaussian blob in 2-D (a plugin)")
    def blob(cfg):
        g = torch.Generator().manual_seed(cfg.seed)
        x = cfg.options["spread"] * torch.randn(cfg.options["count"], 2, generator=g) + 3.0
        return Data(x=x, kind="vector", name="blob")


    @dataclass
    class TinyOptions:
        hidden: int = 16        # hidden units of G and D


    class TinyD(nn.Module):
        def __init__(self, d_in, hidden):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(d_in, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

        def forward(self, x):  # [N, D] -> logits [N]
            return self.net(x).squeeze(1)


    MODELS.register("tiny-mlp", options=TinyOptions)(ModelFamily(
        generator=lambda m, s: nn.Sequential(nn.Linear(m.z_dim, m.options["hidden"]), nn.ReLU(),
                                             nn.Linear(m.options["hidden"], s[0])),
        discriminator=lambda m, s: TinyD(s[0] * m.pack, m.options["hidden"]),
        kind="vector", describe="one hidden layer each (a plugin)", g_norms=("none",), d_norms=("none",)))


    @dataclass
    class MarginOptions:
        margin: float = 1.0     # where the hinge starts


    LOSSES.register("margin-hinge", options=MarginOptions, doc="hinge with a margin (a plugin)")(AdversarialLoss(
        d=lambda r, f, s, margin: torch.relu(margin - r).mean() + torch.relu(margin + f).mean(),
        g=lambda r, f, margin: -f.mean(), smoothing=False, probability=False))


    @dataclass
    class EpsOptions:
        eps: float = 1e-8       # Adam's epsilon


    @OPTIMIZERS.register("adam-eps", options=EpsOptions, doc="Adam with its epsilon as an option (a plugin)")
    def adam_eps(params, lr, betas, weight_decay, fast, eps):
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay, eps=eps)


    @dataclass
    class CenterOptions:
        center: float = 0.0     # where the samples should be


    def mean_dist(inp):
        c = inp.options["center"]
        return {"mean_dist": float((inp.fake["x"].mean(0) - c).norm())}, {"center": c}


    METRICS.register("mean-dist", options=CenterOptions)(
        MetricSpec("mean-dist", "distance of the samples' mean from a point", {"vector": "raw"}, mean_dist,
                   needs_real=False))
''')

RUN_YAML = textwrap.dedent('''
    data: {name: blob, count: 512, spread: 0.3}
    model: {arch: tiny-mlp, z_dim: 2, hidden: 8, g_norm: none}
    loss: {name: margin-hinge, margin: 0.5}
    optim: {name: adam-eps, eps: 1.0e-6}
    train: {kimg: 0.256, tick_kimg: 0.128, batch: 32, metrics: [mean-dist], grid_size: 16, ema_kimg: 0.1}
    metrics: {mean-dist: {center: 3.0}}
''')


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("plugin")
    (d / "my_plugin.py").write_text(PLUGIN)
    (d / "run.yaml").write_text(RUN_YAML)
    return d


def _one_line_error(r, *fragments):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


def test_plugin_components_with_their_own_options_train_through_the_cli(plugin_dir):
    d = plugin_dir
    r = run_cli("--import", "my_plugin", "train", "run.yaml", "--out", "run", "--quiet",
                "--set", "loss.margin=0.25", cwd=d)
    assert r.returncode == 0, r.stderr
    import yaml

    cfg = yaml.safe_load((d / "run" / "config.yaml").read_text())  # every option saved, flat in its section
    assert cfg["data"]["count"] == 512 and cfg["data"]["spread"] == 0.3
    assert cfg["model"]["hidden"] == 8 and cfg["loss"]["margin"] == 0.25 and cfg["optim"]["eps"] == 1e-6
    assert cfg["metrics"] == {"mean-dist": {"center": 3.0}}
    ticks = [json.loads(x) for x in (d / "run" / "log.jsonl").read_text().splitlines()]
    assert [t["nimg"] for t in ticks] == [128, 256]
    assert all(np.isfinite(t["metrics"]["mean-dist"]["mean_dist"]) for t in ticks)
    # the exported generator is rebuilt from its config.json, the family's option included
    r = run_cli("--import", "my_plugin", "sample", "run", "--n", "5", "--out", "s.npz", cwd=d)
    assert r.returncode == 0, r.stderr
    assert np.load(d / "s.npz")["samples"].shape == (5, 2)
    # and eval takes the metric's option like any other key: the option changes the number and is stamped on it
    res = {}
    for c in (0, 3):
        r = run_cli("--import", "my_plugin", "eval", "run", "--metrics", "mean-dist", "--set",
                    f"metrics.mean-dist.center={c}", "--json", f"m{c}.json", cwd=d)
        assert r.returncode == 0, r.stderr
        res[c] = json.loads((d / f"m{c}.json").read_text())["mean-dist"]
        assert res[c]["protocol"]["options"] == {"center": float(c)}
    assert abs(res[0]["values"]["mean_dist"] - res[3]["values"]["mean_dist"]) > 1


def test_plugin_components_are_listed_with_their_options(plugin_dir):
    r = run_cli("--import", "my_plugin", "presets", "--components", cwd=plugin_dir)
    assert r.returncode == 0, r.stderr
    for text in ("blob", "--set data.count=256 (int)  how many points the blob has", "tiny-mlp",
                 "--set model.hidden=16 (int)", "margin-hinge", "--set loss.margin=1.0 (float)  where the hinge starts",
                 "adam-eps", "--set optim.eps=1e-08", "mean-dist", "--set metrics.<name>.center=0.0"):
        assert text in r.stdout, text
    r = run_cli("--import", "my_plugin", "train", "--help", cwd=plugin_dir)
    assert r.returncode == 0 and "--set model.hidden=16" in r.stdout


def test_plugin_option_errors_name_the_key(plugin_dir):
    d = plugin_dir
    r = run_cli("--import", "my_plugin", "train", "run.yaml", "--out", "bad", "--set", "data.cnt=3", cwd=d)
    _one_line_error(r, "unknown key 'data.cnt'", "data.count", "data.spread", "data.resolution")
    r = run_cli("--import", "my_plugin", "train", "run.yaml", "--out", "bad", "--set", "model.hidden=big", cwd=d)
    _one_line_error(r, "model.hidden: expected an integer, got 'big'")
    r = run_cli("--import", "my_plugin", "train", "run.yaml", "--out", "bad", "--set", "metrics.mean-dist.radius=1",
                cwd=d)
    _one_line_error(r, "unknown key 'metrics.mean-dist.radius'", "metrics.mean-dist.center")
    # the norms a family does not implement are refused, not silently ignored
    r = run_cli("--import", "my_plugin", "train", "run.yaml", "--out", "bad", "--set", "model.d_norm=spectral",
                cwd=d)
    _one_line_error(r, "model.d_norm: the 'tiny-mlp' family does not implement 'spectral'")
    # without the plugin, its names are unknown: one clear line, not a traceback
    _one_line_error(run_cli("sample", "run", "--n", "2", "--out", "x.npz", cwd=d),
                    "unknown model architecture 'tiny-mlp'")


def test_built_in_options_errors():
    with pytest.raises(GanforgeError, match=r"unknown key 'loss.margin' \(loss.name 'hinge' has no options"):
        resolve("digits", ["loss.name=hinge", "loss.margin=1"])
    with pytest.raises(GanforgeError, match="unknown key 'model.archh'"):
        resolve({"model": {"archh": "mlp"}})


@pytest.mark.parametrize("key,registry", [("optim.name", OPTIMIZERS), ("optim.lr_schedule", LR_SCHEDULES),
                                          ("train.noise_schedule", NOISE_SCHEDULES), ("model.prior", PRIORS),
                                          ("model.arch", MODELS)])
def test_allowed_values_are_the_registries(key, registry):
    with pytest.raises(GanforgeError) as e:
        resolve("digits", [f"{key}=nope"])
    assert str(e.value).startswith(f"{key}: unknown") and ", ".join(registry.names()) in str(e.value)


def test_a_new_registry_entry_is_a_valid_value_at_once():
    @OPTIMIZERS.register("sgd-plain-test", doc="SGD without momentum (a test)")
    def sgd_plain(params, lr, betas, weight_decay, fast):
        import torch

        return torch.optim.SGD(params, lr=lr)

    assert resolve("digits", ["optim.name=sgd-plain-test"]).optim.name == "sgd-plain-test"
    assert "sgd-plain-test" in describe_components()


def test_resnet_refuses_batch_norm_in_d():
    """model.d_norm=batch was silently ignored by the resnet family; now it says so."""
    with pytest.raises(GanforgeError, match="model.d_norm: the 'resnet' family does not implement 'batch'"):
        resolve("digits", ["model.arch=resnet", "model.d_norm=batch"])
    assert resolve("digits", ["model.arch=resnet", "model.d_norm=spectral"]).model.d_norm == "spectral"


def test_generator_from_another_version_loads_and_reports_unknown_keys(tmp_path):
    run = ganforge.train("digits", overrides=TINY + ["train.kimg=0.128"], out=tmp_path / "r", progress=False)
    before = ganforge.load(run).sample(4, seed=1)
    p = run / "generator" / "config.json"
    meta = json.loads(p.read_text())
    meta["model"]["style_mixing"] = 0.9        # a key a newer (or older) version wrote
    meta["config"]["train"]["future_knob"] = 1
    meta["config"]["future_section"] = {"p": 0.2}  # a section a newer version has
    p.write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match="ignored 1 key.*model.style_mixing"):
        g = ganforge.load(run)
    assert np.array_equal(g.sample(4, seed=1), before)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = ganforge.evaluate(run, ["class_kl"], n=64)
    assert "class_kl" in res
    assert any("train.future_knob" in str(w.message) and "future_section" in str(w.message) for w in caught)
    meta["model"]["z_dim"] = "eight"           # a wrong type is damage, not a version difference
    p.write_text(json.dumps(meta))
    with pytest.raises(GanforgeError, match="damaged or not a ganforge generator"):
        ganforge.load(run)


def test_the_architecture_page_examples_run(tmp_path):
    """Every ```python block of docs/architecture.md, in one plugin file, trains through the CLI."""
    import re

    from .conftest import ROOT

    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 5
    (tmp_path / "my_components.py").write_text("\n\n".join(blocks))
    np.save(tmp_path / "points.npy", np.random.default_rng(0).normal(size=(400, 2)).astype(np.float32))
    sets = ["data.name=my-vectors", "data.path=points.npy", "data.every=2", "model.arch=tiny-mlp", "model.hidden=8",
            "model.g_norm=none", "model.d_norm=none", "model.z_dim=2", "loss.name=soft-hinge", "loss.margin=0.5",
            "optim.name=adam-eps", "optim.eps=1e-7", "train.metrics=[mean-distance]",
            "metrics.mean-distance.squared=true", "train.kimg=0.128", "train.tick_kimg=0.064", "train.batch=32",
            "train.grid_size=16"]
    r = run_cli("--import", "my_components", "train", "ring", "--out", "run", "--quiet",
                *[a for s in sets for a in ("--set", s)], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    ticks = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert len(ticks) == 2 and ticks[-1]["metrics"]["mean-distance"]["mean_distance"] >= 0


def test_the_config_reference_covers_every_key_and_component():
    """docs/config.md, the config reference, names every configuration key and every built-in component."""
    import dataclasses
    import subprocess
    import sys

    from ganforge.config import SECTIONS, Config, common_keys

    from .conftest import ROOT

    text = (ROOT / "docs" / "config.md").read_text(encoding="utf-8")
    keys = [k for sec in SECTIONS for k in common_keys(sec)] + \
           [f.name for f in dataclasses.fields(Config) if f.name not in SECTIONS]
    missing = [k for k in keys if f"`{k}`" not in text]
    assert not missing, f"docs/config.md does not describe: {missing}"
    # the built-in components, from a fresh process (tests in this one register components of their own)
    names = subprocess.run([sys.executable, "-c", "from ganforge.components import REGISTRIES as R; "
                            "print(' '.join(n for r in R.values() for n in r.names()))"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert "dcgan" in names
    missing = [n for n in names if f"`{n}`" not in text]
    assert not missing, f"docs/config.md does not name the components: {missing}"
