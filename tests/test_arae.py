"""The latent text GAN on a sequence autoencoder (models/arae.py, ARAE): the autoencoder (lengths, unit codes, an
exact reconstruction once fitted, the layout of decoded rows), the step (warm-up, joint or frozen autoencoder, every
loss and penalty on codes), training end to end with exact resume, export and `ganforge sample`, and clear errors
for what does not apply."""

import numpy as np
import pytest
import torch

import ganforge
from ganforge.components import resolve
from ganforge.config import ModelConfig
from ganforge.data import build_dataset
from ganforge.data.tokenize import EOS, PAD
from ganforge.errors import GanforgeError
from ganforge.losses import LOSSES
from ganforge.models import MODELS, build_models
from ganforge.models.arae import lengths_of
from ganforge.training.checkpoint import list_checkpoints, load_checkpoint
from ganforge.training.state import setup
from ganforge.training.step import train_step
from ganforge.utils.stats import Stats

from .conftest import one_line_error, run_cli

CPU = torch.device("cpu")
V, L = 9, 6


def _model(**opts) -> ModelConfig:
    m = ModelConfig(arch="arae", z_dim=4, g_width=16, d_width=16, depth=1, g_norm="none")
    m.options = {"vocab": V, "emb_dim": 8, "code_dim": 8, "ae_width": 32, "ae_kimg": 0.0, "ae_joint": True,
                 "code_noise": 0.0, **opts}
    return m


@pytest.fixture
def lines(syllable_lines):
    return syllable_lines


def _overrides(path, tmp_path) -> list[str]:
    return ["data.name=text", f"data.path={path}", "data.tokenizer=char", "data.max_len=6",
            f"data.cache_dir={tmp_path / 'cache'}", "model.arch=arae", "model.z_dim=4", "model.g_width=16",
            "model.d_width=16", "model.depth=1", "model.g_norm=none", "model.emb_dim=8", "model.code_dim=8",
            "model.ae_width=16", "model.ae_kimg=0.032", "train.batch=16", "train.kimg=0.128",
            "train.tick_kimg=0.064", "train.ema_kimg=0.05", "train.grid_size=8", "train.metrics=[]",
            "train.tensorboard=false", "train.precision=fp32"]


def test_arae_is_a_latent_text_family():
    fam = MODELS.get("arae")
    assert fam.kind == "text" and fam.latent and fam.encoder is None
    assert not MODELS.get("gumbel").latent


def test_lengths_count_up_to_and_including_the_first_end():
    ids = torch.tensor([[5, 6, EOS, PAD, PAD], [5, EOS, PAD, PAD, PAD], [EOS, PAD, PAD, PAD, PAD],
                        [5, 6, 7, 8, 9], [5, PAD, PAD, PAD, PAD]])
    assert lengths_of(ids).tolist() == [3, 2, 1, 5, 2]


def test_codes_are_unit_vectors_and_real_codes_carry_no_gradient():
    G, D = build_models(_model(), (L,), "text")
    ids = torch.tensor([[4, 5, EOS, PAD, PAD, PAD], [6, 7, 8, EOS, PAD, PAD]])
    c = G.real_codes(ids)
    assert c.shape == (2, 8) and not c.requires_grad
    torch.testing.assert_close(c.norm(dim=1), torch.ones(2))
    fake = G.train()(torch.randn(3, 4))
    torch.testing.assert_close(fake.norm(dim=1), torch.ones(3), rtol=1e-5, atol=1e-5)
    D(fake).sum().backward()  # D's gradient reaches the code MLP, not the autoencoder
    assert all(p.grad is not None for p in G.mlp.parameters())
    assert all(p.grad is None for n, p in G.named_parameters() if not n.startswith("mlp."))
    # the padding after EOS does not change a row's code: the encoder's state at EOS is the code
    longer = torch.tensor([[4, 5, EOS, PAD, PAD, PAD, PAD, PAD]])
    torch.testing.assert_close(G.encode_text(longer), G.encode_text(ids[:1]))


def test_the_autoencoder_learns_to_reconstruct_exactly():
    torch.manual_seed(0)
    G, _ = build_models(_model(), (L,), "text")
    rows = [[4, 5, 6], [7, 8], [4, 4, 8, 7, 5], [6], [8, 7, 6, 5]]
    ids = torch.tensor([r + [EOS] + [PAD] * (L - len(r) - 1) for r in rows])
    opt = torch.optim.Adam(G.parameters(), lr=1e-2)
    with torch.no_grad():
        first = float(G.autoencoder_loss(ids))
    for _ in range(150):
        opt.zero_grad()
        G.autoencoder_loss(ids).backward()
        opt.step()
    with torch.no_grad():
        assert float(G.autoencoder_loss(ids)) < 0.01 * first
    torch.testing.assert_close(G.decode(G.encode_text(ids)).argmax(-1), ids)


def test_decoded_rows_have_the_layout_of_real_rows():
    torch.manual_seed(1)
    G, _ = build_models(_model(), (L,), "text")
    y = G.eval()(torch.randn(64, 4))
    assert y.shape == (64, L, V) and set(y.unique().tolist()) <= {0.0, 1.0} and (y.sum(-1) == 1).all()
    for row in y.argmax(-1).tolist():
        end = next(i for i, t in enumerate(row) if t in (EOS, PAD))
        assert all(t == PAD for t in row[end + 1:])


def _params(module, prefix=None):
    return {n: p.detach().clone() for n, p in module.named_parameters()
            if prefix is None or n.startswith(prefix) == (prefix != "!mlp.")}


def _changed(before, module):
    now = dict(module.named_parameters())
    return {n for n, p in before.items() if not torch.equal(p, now[n])}


@pytest.mark.parametrize("joint", [True, False])
def test_warm_up_then_joint_or_frozen_autoencoder(joint, lines, tmp_path):
    cfg = resolve(None, _overrides(lines, tmp_path) + [f"model.ae_joint={str(joint).lower()}"])
    s = setup(cfg, build_dataset(cfg.data), CPU)
    stats = Stats()
    g0, d0 = _params(s.G), _params(s.D)
    train_step(s, stats)  # warm-up (ae_kimg = 32 images = 2 steps of 16): only the autoencoder trains
    assert s.nimg == 16
    changed = _changed(g0, s.G)
    assert changed and not any(n.startswith("mlp.") for n in changed) and not _changed(d0, s.D)
    assert set(stats.read()) == {"ae_loss"}
    train_step(s, stats)
    g1, d1 = _params(s.G), _params(s.D)
    stats = Stats()
    train_step(s, stats)  # the GAN has started: D and G's MLP train; the autoencoder only when joint
    assert s.nimg == 48
    changed = _changed(g1, s.G)
    assert any(n.startswith("mlp.") for n in changed) and _changed(d1, s.D)
    assert any(not n.startswith("mlp.") for n in changed) == joint
    got = stats.read()
    assert {"loss_d", "loss_g"} <= set(got) and ("ae_loss" in got) == joint


@pytest.mark.parametrize("loss", LOSSES.names())
def test_every_loss_and_penalty_trains_a_step_on_codes(loss, lines, tmp_path):
    extra = [f"loss.name={loss}", "loss.r1_gamma=1", "loss.r2_gamma=1", "train.noise_std=0.1",
             "train.noise_schedule=constant", "model.ae_kimg=0", "model.code_noise=0.1"]
    if loss == "wasserstein":
        extra.append("loss.gp_weight=10")
    cfg = resolve(None, _overrides(lines, tmp_path) + extra)
    s = setup(cfg, build_dataset(cfg.data), CPU)
    stats = Stats()
    before = _params(s.G)
    train_step(s, stats)
    got = stats.read()
    assert all(torch.isfinite(torch.tensor(v)) for v in got.values() if isinstance(v, float)), got
    assert got["r1"] >= 0 and got["r2"] >= 0 and got["ae_loss"] > 0
    assert any(n.startswith("mlp.") for n in _changed(before, s.G))


def test_train_export_sample_and_exact_resume(lines, tmp_path):
    over = _overrides(lines, tmp_path) + ["model.code_noise=0.05", "train.d_steps=2", "loss.r1_gamma=0.5"]
    full = ganforge.train(None, overrides=over, out=tmp_path / "f", progress=False)
    half = ganforge.train(None, overrides=over + ["train.kimg=0.064"], out=tmp_path / "h", progress=False)
    ganforge.train(resume=half, overrides=["train.kimg=0.128"], progress=False)
    a, b = (load_checkpoint(list_checkpoints(r)[-1]) for r in (full, half))
    for name in ("G_ema", "G", "D"):
        for k in a[name]:
            assert torch.equal(a[name][k], b[name][k]), (name, k)
    assert a["config"]["model"]["vocab"] > 3
    g = ganforge.load(full)
    assert g.kind == "text"
    s1 = g.sample(20, seed=4)
    assert s1 == ganforge.sample(full, 20, seed=4) and all(isinstance(x, str) for x in s1)
    assert (full / "samples").is_dir() and sorted((full / "samples").glob("tick-*.txt"))
    out = tmp_path / "s.txt"
    r = run_cli("sample", str(full), "--n", "6", "--out", str(out), "--seed", "4")
    assert r.returncode == 0, r.stderr[-2000:]
    assert out.read_text(encoding="utf-8").split("\n")[:6] == g.sample(6, seed=4)


@pytest.mark.parametrize("setting,fragment", [
    ("model.code_dim=1", "model.code_dim: codes live on the unit sphere"),
    ("model.ae_kimg=-1", "model.ae_kimg: the autoencoder's warm-up"),
    ("model.code_noise=-0.1", "model.code_noise: the std of the noise"),
    ("model.g_norm=batch", "model.g_norm: the 'arae' family does not implement 'batch'"),
    ("model.encoder=true", "model.encoder: the 'arae' family has no encoder"),
    ("model.conditional=true", "model.conditional: the 'arae' text model has no class-conditional form"),
])
def test_what_does_not_apply_is_refused_clearly(setting, fragment, lines, tmp_path):
    with pytest.raises(GanforgeError) as e:
        resolve(None, _overrides(lines, tmp_path) + [setting])
    assert fragment in str(e.value)


def test_the_exported_generator_encodes_and_decodes_text(lines, tmp_path):
    run = ganforge.train(None, overrides=_overrides(lines, tmp_path), out=tmp_path / "r", progress=False)
    g = ganforge.load(run)
    texts = ["bako", "mine", "rotomi", "ba" * 20]  # the last is longer than the rows: cut to fit
    c = g.encode_text(texts)
    assert c.shape == (4, 8) and c.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(c, g.encode_text(texts))           # deterministic
    out = g.decode_codes(c)
    assert len(out) == 4 and all(isinstance(x, str) and len(x) <= 5 for x in out)  # rows of max_len 6: 5 chars
    assert g.decode_codes(c[:0]) == [] and g.encode_text([]).shape == (0, 8)
    with pytest.raises(GanforgeError, match=r"codes have shape \(4, 3\); this generator's codes are \[N, 8\]"):
        g.decode_codes(c[:, :3])
    with pytest.raises(GanforgeError, match="a list of strings"):
        g.encode_text("bako")
    gum = [o for o in _overrides(lines, tmp_path) if not o.startswith(("model.ae", "model.code", "model.depth"))]
    gum = [o.replace("model.arch=arae", "model.arch=gumbel") for o in gum] + ["train.kimg=0.032"]
    other = ganforge.load(ganforge.train(None, overrides=gum, out=tmp_path / "g", progress=False))
    with pytest.raises(GanforgeError, match="has no text autoencoder; the latent text family 'arae' has one"):
        other.encode_text(texts)


def test_the_warm_up_follows_the_schedule_clock(lines, tmp_path):
    """Under a --minutes budget the schedule clock runs ahead of the image count: the warm-up (model.ae_kimg) is
    measured on that clock, as every schedule is, so a short budget still reaches the GAN."""
    cfg = resolve(None, _overrides(lines, tmp_path))
    s = setup(cfg, build_dataset(cfg.data), CPU)
    s.sched_nimg = 64  # past the 32-image warm-up on the clock, though no image has been shown yet
    d0 = _params(s.D)
    stats = Stats()
    train_step(s, stats)
    assert _changed(d0, s.D) and "loss_d" in stats.read()


def test_cli_encode_of_a_text_file(lines, tmp_path):
    run = ganforge.train(None, overrides=_overrides(lines, tmp_path), out=tmp_path / "r", progress=False)
    src = tmp_path / "in.txt"
    src.write_text("bako\nmine\nrotomi\n", encoding="utf-8")
    out = tmp_path / "codes.npz"
    r = run_cli("encode", str(run), str(src), "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "encoded 3 line(s) to codes of dimension 8" in r.stdout
    with np.load(out) as z:
        assert z["codes"].shape == (3, 8) and list(z["texts"]) == ["bako", "mine", "rotomi"]
        g = ganforge.load(run)
        np.testing.assert_array_equal(z["codes"], g.encode_text(["bako", "mine", "rotomi"]))
        assert list(z["reconstructions"]) == g.decode_codes(z["codes"])
        assert z["exact"].tolist() == [a == b for a, b in zip(z["texts"], z["reconstructions"])]
    one_line_error(run_cli("encode", str(run), str(src), "--out", str(tmp_path / "x.npz"), "--refine", "5"),
                   "--refine: a text generator's codes come from its encoder alone")
    one_line_error(run_cli("encode", str(run), str(tmp_path / "missing.txt"), "--out", str(tmp_path / "x.npz")),
                   "missing.txt: no such file")
