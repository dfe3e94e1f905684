"""The Gumbel-softmax text GAN (models/textgan.py, RelGAN): the family's contract, the inverse-temperature schedule,
every loss and penalty on it, training end to end (API and CLI), exact resume, export and `ganforge sample`, the
tick's text samples in the log and the report, and clear errors for what does not apply."""
import json

import pytest
import torch

import ganforge
from ganforge.components import resolve
from ganforge.config import ModelConfig
from ganforge.data import build_dataset
from ganforge.data.tokenize import EOS, PAD
from ganforge.errors import GanforgeError
from ganforge.losses import LOSSES
from ganforge.losses.objective import pack
from ganforge.models import MODELS, build_models, fit_vocab, one_hot_tokens, sample_prior
from ganforge.schedules import BETA_SCHEDULES, inverse_temperature
from ganforge.training.checkpoint import list_checkpoints, load_checkpoint
from ganforge.training.state import setup
from ganforge.training.step import train_step
from ganforge.utils.stats import Stats

from .conftest import one_line_error, run_cli

CPU = torch.device("cpu")
V, L = 11, 7


def _model(**kw) -> ModelConfig:
    m = ModelConfig(arch="gumbel", z_dim=6, g_width=16, d_width=8, g_norm="none", **kw)
    m.options = {"vocab": V, "emb_dim": 8, "beta_max": 100.0, "beta_schedule": "exponential", "beta_kimg": 0.0,
                 "kernels": [2, 3]}
    return m


@pytest.fixture
def lines(syllable_lines):
    return syllable_lines


def _overrides(path, tmp_path) -> list[str]:
    return ["data.name=text", f"data.path={path}", "data.tokenizer=char", "data.max_len=6",
            f"data.cache_dir={tmp_path / 'cache'}", "model.arch=gumbel", "model.z_dim=8", "model.g_width=16",
            "model.d_width=8", "model.g_norm=none", "model.emb_dim=8", "model.kernels=[2,3]", "train.batch=16",
            "train.kimg=0.128", "train.tick_kimg=0.064", "train.ema_kimg=0.05", "train.grid_size=8",
            "train.metrics=[]", "train.tensorboard=false", "train.precision=fp32"]


def test_gumbel_is_a_text_family():
    assert "gumbel" in MODELS and MODELS.get("gumbel").kind == "text"
    assert MODELS.get("gumbel").encoder is None


@pytest.mark.parametrize("g_norm", ["none", "batch"])
@pytest.mark.parametrize("d_norm", ["none", "spectral"])
def test_contract_shapes_rows_and_gradients(g_norm, d_norm):
    m = _model()
    m.g_norm, m.d_norm = g_norm, d_norm
    G, D = build_models(m, (L,), "text")
    G.anneal(500, 1.0)  # halfway through a 1 kimg schedule: beta = 100^0.5
    assert float(G.beta) == pytest.approx(10.0)
    z = sample_prior(5, 6, "normal", torch.Generator().manual_seed(0))
    y = G(z)
    assert y.shape == (5, L, V) and y.dtype == torch.float32
    torch.testing.assert_close(y.sum(-1), torch.ones(5, L))  # each position a distribution over the vocabulary
    assert (y >= 0).all()
    logits = D(y)
    assert logits.shape == (5,) and logits.dtype == torch.float32
    logits.sum().backward()  # D's gradient reaches G through the relaxation
    grads = [p.grad for n, p in G.named_parameters() if n.startswith(("out.", "init."))]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


def test_eval_mode_gives_hard_one_hots_in_the_layout_of_real_rows():
    G, D = build_models(_model(), (L,), "text")
    G.eval()
    G.rng = torch.Generator().manual_seed(3)
    with torch.no_grad():
        y = G(torch.randn(64, 6))
    assert set(y.unique().tolist()) <= {0.0, 1.0} and (y.sum(-1) == 1).all()
    ids = y.argmax(-1)
    for row in ids.tolist():  # after the first EOS (or PAD) only PAD; the last position ends the row
        end = next((i for i, t in enumerate(row) if t in (EOS, PAD)), None)
        assert end is not None
        assert all(t == PAD for t in row[end + 1:])
    # D takes token ids as well: the same logits as for their one-hots
    with torch.no_grad():
        torch.testing.assert_close(D(ids), D(one_hot_tokens(ids, V)))


def test_the_gumbel_noise_follows_g_rng():
    G, _ = build_models(_model(), (L,), "text")
    z = torch.randn(4, 6)
    G.rng = torch.Generator().manual_seed(1)
    a = G(z)
    G.rng = torch.Generator().manual_seed(1)
    torch.testing.assert_close(G(z), a)
    G.rng = torch.Generator().manual_seed(2)
    assert not torch.equal(G(z), a)


def test_packing_runs():
    m = _model(pack=2)
    G, D = build_models(m, (L,), "text")
    assert D(pack(G(torch.randn(6, 6)), 2)).shape == (3,)


def test_inverse_temperature_schedules():
    assert set(BETA_SCHEDULES.names()) == {"exponential", "linear", "constant"}
    assert inverse_temperature("exponential", 100.0, 2.0, 0) == pytest.approx(1.0)
    assert inverse_temperature("exponential", 100.0, 2.0, 1000) == pytest.approx(10.0)  # RelGAN: beta_max^(n/N)
    assert inverse_temperature("exponential", 100.0, 2.0, 2000) == pytest.approx(100.0)
    assert inverse_temperature("exponential", 100.0, 2.0, 9000) == pytest.approx(100.0)  # stays after the window
    assert inverse_temperature("linear", 100.0, 2.0, 1000) == pytest.approx(50.5)
    assert inverse_temperature("constant", 100.0, 2.0, 0) == pytest.approx(100.0)


def test_fit_vocab_fills_and_checks():
    m = _model()
    m.options["vocab"] = 0
    fit_vocab(m, 29)
    assert m.options["vocab"] == 29
    with pytest.raises(GanforgeError, match="model.vocab: 29, but the dataset's tokeniser has 30"):
        fit_vocab(m, 30)
    m.options["vocab"] = 0
    with pytest.raises(GanforgeError, match="model.vocab: the vocabulary size is not known"):
        build_models(m, (L,), "text")


@pytest.mark.parametrize("loss", LOSSES.names())
def test_every_loss_and_penalty_trains_a_step(loss, lines, tmp_path):
    """Every adversarial loss works on the relaxed one-hots, with R1 and R2 on them (and GP, instance noise)."""
    extra = [f"loss.name={loss}", "loss.r1_gamma=1", "loss.r2_gamma=1", "train.noise_std=0.1",
             "train.noise_schedule=constant"]
    if loss == "wasserstein":
        extra.append("loss.gp_weight=10")
    cfg = resolve(None, _overrides(lines, tmp_path) + extra)
    s = setup(cfg, build_dataset(cfg.data), CPU)
    stats = Stats()
    before = [p.detach().clone() for p in s.G.parameters()]
    train_step(s, stats)
    got = stats.read()
    assert all(torch.isfinite(torch.tensor(v)) for v in got.values() if isinstance(v, float)), got
    assert got["r1"] >= 0 and got["r2"] >= 0
    assert any(not torch.equal(a, b) for a, b in zip(before, s.G.parameters()))


def test_train_samples_log_export_and_exact_resume(lines, tmp_path):
    over = _overrides(lines, tmp_path) + ["model.beta_kimg=0.128"]  # 0 would follow train.kimg, which differs here
    full = ganforge.train(None, overrides=over, out=tmp_path / "f", progress=False)
    half = ganforge.train(None, overrides=over + ["train.kimg=0.064"], out=tmp_path / "h", progress=False)
    ganforge.train(resume=half, overrides=["train.kimg=0.128"], progress=False)
    a, b = (load_checkpoint(list_checkpoints(r)[-1]) for r in (full, half))
    for name in ("G_ema", "G", "D"):
        for k in a[name]:
            assert torch.equal(a[name][k], b[name][k]), (name, k)
    assert a["config"]["model"]["vocab"] > 3  # filled in from the data, saved with the config
    # the tick's text: samples/tick-*.txt, and some of it in the tick record with beta
    ticks = [json.loads(x) for x in (full / "log.jsonl").read_text().splitlines()]
    ticks = [t for t in ticks if t.get("event") == "tick"]
    # beta of the last step, taken at the clock before it: 112 of 128 images -> 100^(112/128)
    assert len(ticks) == 2 and ticks[-1]["beta"] == pytest.approx(100 ** (112 / 128), rel=1e-4)
    assert ticks[0]["beta"] == pytest.approx(100 ** (48 / 128), rel=1e-4)
    assert all(isinstance(s, str) for s in ticks[-1]["samples"]) and len(ticks[-1]["samples"]) == 8
    txt = sorted((full / "samples").glob("tick-*.txt"))
    assert len(txt) == 2 and len(txt[-1].read_text(encoding="utf-8").splitlines()) == 8  # train.grid_size
    # the exported generator samples text without the dataset, reproducibly
    g = ganforge.load(full)
    assert g.kind == "text" and g.tokenizer is not None
    s1, s2 = g.sample(20, seed=4), ganforge.sample(full, 20, seed=4)
    assert s1 == s2 and len(s1) == 20 and all(isinstance(s, str) for s in s1)
    assert s1 != g.sample(20, seed=5)
    ids = g.sample_tensor(20, seed=4)
    assert ids.dtype == torch.int64 and ids.shape == (20, 6) and g.tokenizer.decode(ids) == s1
    with pytest.raises(GanforgeError, match="projection of a text generator"):
        g.project(ids.numpy())
    # the report shows the last tick's text samples, escaped
    from ganforge.report import write_report
    html = write_report(full).read_text(encoding="utf-8")
    assert 'class="text-samples"' in html and txt[-1].read_text(encoding="utf-8").splitlines()[0] in html


def test_cli_train_sample_txt(lines, tmp_path):
    run = tmp_path / "run"
    r = run_cli("train", "--out", str(run), "--quiet", *[a for o in _overrides(lines, tmp_path) for a in ("--set", o)])
    assert r.returncode == 0, r.stderr[-2000:]
    out = tmp_path / "s.txt"
    r = run_cli("sample", str(run), "--n", "12", "--out", str(out), "--seed", "3")
    assert r.returncode == 0, r.stderr[-2000:]
    got = out.read_text(encoding="utf-8").split("\n")
    assert len(got) == 13 and got[-1] == ""  # 12 lines, each ended by a newline
    assert got[:12] == ganforge.load(run).sample(12, seed=3)
    one_line_error(run_cli("sample", str(run), "--n", "4", "--out", str(tmp_path / "s.png")),
                   "text samples go to a .txt file")


@pytest.mark.parametrize("setting,fragment", [
    ("augment.policy=[color]", "augment.policy: color augment images"),
    ("model.conditional=true", "model.conditional: the 'gumbel' text model has no class-conditional form"),
    ("model.encoder=true", "model.encoder: the 'gumbel' family has no encoder"),
    ("model.mbstd=4", "model.mbstd: the 'gumbel' family's D has no minibatch standard deviation"),
    ("model.d_norm=batch", "model.d_norm: the 'gumbel' family does not implement 'batch'"),
    ("model.beta_max=0.5", "model.beta_max: the final inverse temperature"),
    ("model.beta_schedule=cosine", "model.beta_schedule: unknown 'cosine'"),
])
def test_what_does_not_apply_is_refused_clearly(setting, fragment, lines, tmp_path):
    with pytest.raises(GanforgeError) as e:
        resolve(None, _overrides(lines, tmp_path) + [setting])
    assert fragment in str(e.value)


def test_image_families_refuse_text_and_the_text_family_refuses_images(lines, tmp_path):
    with pytest.raises(GanforgeError, match="choose one of: arae, gumbel"):
        ganforge.train(None, overrides=[o for o in _overrides(lines, tmp_path) if not o.startswith("model.")],
                       out=tmp_path / "x", progress=False)
    with pytest.raises(GanforgeError, match="model.arch: 'gumbel' is for text data, but this dataset is image data"):
        build_models(_model(), (1, 8, 8), "image")


def test_words_preset_resolves():
    cfg = resolve("words-gumbel")
    assert cfg.data.name == "words" and cfg.model.arch == "gumbel" and cfg.description
