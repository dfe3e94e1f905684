"""The fast path: precision=auto, channels_last, bf16 resume, torch.compile and its eager fallback."""
import json

import pytest
import torch

from ganforge.components import resolve
from ganforge.data import build_dataset
from ganforge.training import device as dev
from ganforge.training.state import setup
from ganforge.training.step import train_step
from ganforge.utils.stats import Stats

from .conftest import TINY, resume_is_exact

CPU = torch.device("cpu")




def _steps(overrides, n=4):
    cfg = resolve("digits", TINY + overrides)
    ctx = setup(cfg, build_dataset(cfg.data), CPU)
    stats = Stats()
    for _ in range(n):
        train_step(ctx, stats)
    assert ctx.nimg == n * cfg.train.batch and stats._n["loss_g"] == n
    return ctx


def test_precision_auto(monkeypatch):
    cuda = torch.device("cuda")
    assert dev.resolve_precision("fp32", cuda, "image") == "fp32"
    assert dev.resolve_precision("bf16", CPU, "vector") == "bf16"
    assert dev.resolve_precision("auto", CPU, "vector") == "fp32"  # small MLPs: casts cost more than they save
    for amx, avx512_bf16, want in ((False, False, "fp32"), (False, True, "bf16"), (True, False, "bf16")):
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
        assert dev.resolve_precision("auto", CPU, "image") == want
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert dev.resolve_precision("auto", cuda, "image") == "bf16"


def test_channels_last_reaches_data_and_activations():
    ctx = _steps(["train.channels_last=true", "train.precision=bf16"], n=1)
    cl = torch.channels_last
    assert ctx.sampler.x.is_contiguous(memory_format=cl) and ctx.sampler.next().is_contiguous(memory_format=cl)
    with torch.no_grad(), ctx.objective.autocast():
        x = ctx.G(torch.randn(4, 8))
    assert x.dtype == torch.bfloat16 and x.is_contiguous(memory_format=cl)


def test_bf16_channels_last_resume_is_bit_identical(tmp_path):
    fast = TINY + ["train.precision=bf16", "train.channels_last=true", "train.tick_kimg=0.128"]
    full = resume_is_exact(fast, tmp_path)
    ticks = [json.loads(x) for x in (full / "log.jsonl").read_text().splitlines()]
    assert ticks[-1]["precision"] == "bf16"


def test_compile_failure_falls_back_to_eager_with_one_warning(monkeypatch):
    eager = _steps([])
    calls = []

    def broken_compile(module, *a, **k):
        def fail(*args):
            calls.append(1)
            raise RuntimeError("no C compiler (simulated)")
        return fail

    monkeypatch.setattr(torch, "compile", broken_compile)
    with pytest.warns(RuntimeWarning, match="torch.compile failed") as rec:
        fallback = _steps(["train.compile=true"])
    assert len([w for w in rec if "torch.compile failed" in str(w.message)]) == 2  # once for G, once for D
    assert len(calls) == 2  # and never tried again
    for a, b in zip(eager.G_ema.state_dict().values(), fallback.G_ema.state_dict().values()):
        assert torch.equal(a, b)


def test_compiled_training_is_close_to_eager():
    """torch.compile of the G / D forwards (penalties eager) follows eager training closely, on this machine's
    compiler; where it cannot compile, the run falls back to eager and warns."""
    extra = ["loss.r1_gamma=1.0", "model.g_norm=none"]  # R1's double backward must run outside the compiled D
    eager = _steps(extra, n=6)
    compiled = _steps(extra + ["train.compile=true"], n=6)
    if compiled.objective.G.failed or compiled.objective.D.failed:
        pytest.skip("torch.compile is not usable here; the fallback ran (see the warning)")
    for (k, a), b in zip(eager.G_ema.state_dict().items(), compiled.G_ema.state_dict().values()):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5), (k, (a - b).abs().max().item())



def test_reusing_the_d_steps_fakes_gives_the_same_generator_gradient():
    """train.reuse_fakes: G's step on the kept fakes (and graph) of the D step == a fresh G(z) on the same z."""
    cfg = resolve("digits", TINY)
    data = build_dataset(cfg.data)
    grads = []
    for keep in (True, False):
        ctx = setup(cfg, data, CPU)  # same seed: same initial weights
        torch.manual_seed(1)
        real, z = ctx.sampler.next().float() / 127.5 - 1, torch.randn(cfg.train.batch, cfg.model.z_dim)
        stats = Stats()
        ctx.D.requires_grad_(True)
        fake = ctx.objective.d_phase(real, z, stats, keep_fake=keep)
        assert (fake is not None) == keep
        ctx.opt_d.step()
        ctx.D.requires_grad_(False)
        ctx.objective.g_phase(None if keep else z, stats, fake=fake)
        grads.append([p.grad.clone() for p in ctx.G.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("reuse,d_steps", [(True, 1), (True, 2), (False, 1), (False, 2)])
def test_reuse_fakes_runs_the_generator_once_per_d_step(reuse, d_steps):
    cfg = resolve("digits", TINY + [f"train.reuse_fakes={str(reuse).lower()}", f"train.d_steps={d_steps}"])
    ctx = setup(cfg, build_dataset(cfg.data), CPU)
    calls = []
    ctx.G.register_forward_hook(lambda *a: calls.append(torch.is_grad_enabled()))
    train_step(ctx, Stats())
    # D steps run G without a graph, except the last one when its fakes are kept for G's step
    want = [False] * (d_steps - 1) + ([True] if reuse else [False, True])
    assert calls == want


def test_cudnn_benchmark_follows_the_config(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    t = resolve("digits", TINY).train
    dev.configure_backends(t, CPU)  # nothing to do on CPU
    assert torch.backends.cudnn.benchmark is False
    dev.configure_backends(t, torch.device("cuda"))  # a device object only: no GPU is touched
    assert torch.backends.cudnn.benchmark is True and t.cudnn_benchmark is True
    t.cudnn_benchmark = False
    dev.configure_backends(t, torch.device("cuda"))
    assert torch.backends.cudnn.benchmark is False
