"""End-to-end: tiny training runs through the CLI and the API, exact resume, sampling, and bad input."""
import json

import numpy as np
import pytest
import torch

import ganforge
from ganforge.training.checkpoint import list_checkpoints, load_checkpoint

from .conftest import TINY, one_line_error, run_cli


def _train(out, *extra, kimg=None):
    over = list(TINY) + list(extra)
    if kimg is not None:
        over.append(f"train.kimg={kimg}")
    return ganforge.train("digits", overrides=over, out=out, progress=False)


def test_cli_train_writes_the_run_directory(tmp_path):
    out = tmp_path / "run"
    sets = [a for kv in TINY for a in ("--set", kv)]
    r = run_cli("train", "digits", "--out", str(out), "--quiet", *sets)
    assert r.returncode == 0, r.stderr
    assert "run directory" in r.stdout
    for p in ("config.yaml", "log.jsonl", "generator/model.safetensors", "generator/config.json"):
        assert (out / p).is_file(), p
    lines = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    ticks = [x for x in lines if x["event"] == "tick"]
    assert len(ticks) == 2 and ticks[-1]["kimg"] >= 0.256
    for k in ("loss_d", "loss_g", "d_real", "d_fake", "img_per_s", "time_s"):
        assert np.isfinite(ticks[-1][k]), k
    assert len(list((out / "samples").glob("*.png"))) == 2
    assert len(list_checkpoints(out)) == 2
    # the resolved config is saved with the run and inside each checkpoint
    ck = load_checkpoint(list_checkpoints(out)[-1])
    assert ck["config"]["train"]["kimg"] == pytest.approx(0.256)


def test_resume_is_bit_identical(tmp_path):
    """One run of N images == N/2 images + resume to N: same G_ema, bit for bit (CPU)."""
    full = _train(tmp_path / "full", "train.kimg=0.512", "train.tick_kimg=0.256")
    half = _train(tmp_path / "half", "train.tick_kimg=0.256", kimg=0.256)
    ganforge.train(resume=half, overrides=["train.kimg=0.512"], progress=False)
    a = load_checkpoint(list_checkpoints(full)[-1])
    b = load_checkpoint(list_checkpoints(half)[-1])
    assert a["nimg"] == b["nimg"] == 512
    for name in ("G_ema", "G", "D"):
        for k in a[name]:
            assert torch.equal(a[name][k], b[name][k]), (name, k)
    assert torch.equal(a["rng"], b["rng"])


def test_resume_with_losses_and_penalties_is_exact(tmp_path):
    extra = ["loss.name=wasserstein", "train.d_steps=2", "train.noise_std=0.1", "train.noise_kimg=0.5",
             "loss.r1_gamma=1.0", "train.tick_kimg=0.128"]
    full = _train(tmp_path / "f", *extra, kimg=0.256)
    half = _train(tmp_path / "h", *extra, kimg=0.128)
    ganforge.train(resume=half, overrides=["train.kimg=0.256"], progress=False)
    a, b = (load_checkpoint(list_checkpoints(r)[-1]) for r in (full, half))
    for k in a["G_ema"]:
        assert torch.equal(a["G_ema"][k], b["G_ema"][k]), k


def test_sampling_is_reproducible_and_needs_no_dataset(tmp_path, monkeypatch):
    run = _train(tmp_path / "r")
    import ganforge.data as gdata

    monkeypatch.setattr(gdata, "build_dataset", lambda cfg: (_ for _ in ()).throw(AssertionError("no data!")))
    g = ganforge.load(run)
    a, b, c = g.sample(10, seed=3), g.sample(10, seed=3), g.sample(10, seed=4)
    assert a.dtype == np.uint8 and a.shape == (10, 8, 8, 1)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # batch size does not change the samples
    assert np.array_equal(g.sample(10, seed=3, batch=3), a)
    assert g.interpolate(steps=5).shape == (5, 8, 8, 1)


def test_cli_sample_formats(tmp_path):
    run = _train(tmp_path / "r")
    for out in ("s.npz", "s.png", "dir"):
        r = run_cli("sample", str(run), "--n", "6", "--out", str(tmp_path / out), "--seed", "1")
        assert r.returncode == 0, r.stderr
    z = np.load(tmp_path / "s.npz")
    assert z["images"].shape == (6, 8, 8, 1) and z["images"].dtype == np.uint8
    z2 = ganforge.load(run).sample(6, seed=1)
    assert np.array_equal(z["images"], z2)
    assert len(list((tmp_path / "dir").glob("*.png"))) == 6


def test_vector_samples_npz(tmp_path):
    run = ganforge.train("ring", overrides=["train.kimg=0.5", "train.tick_kimg=0.5", "train.batch=64",
                                            "model.g_width=16", "model.d_width=16", "data.n=1000"],
                         out=tmp_path / "ring", progress=False)
    r = run_cli("sample", str(run), "--n", "7", "--out", str(tmp_path / "v.npz"))
    assert r.returncode == 0, r.stderr
    s = np.load(tmp_path / "v.npz")["samples"]
    assert s.shape == (7, 2) and s.dtype == np.float32
    assert list((run / "samples").glob("*.png"))  # a scatter plot per tick


def test_minutes_budget_stops_cleanly(tmp_path):
    run = ganforge.train("digits", overrides=TINY + ["train.kimg=1000", "optim.lr_kimg=1000"], out=tmp_path / "m",
                         minutes=0.05, progress=False)
    ck = load_checkpoint(list_checkpoints(run)[-1])
    assert 0 < ck["nimg"] < 1_000_000
    assert (run / "generator" / "model.safetensors").is_file()
    assert ck["sched_nimg"] == 1_000_000  # the budget ran out: the schedule clock reached its end
    # its schedule is complete: a resume needs more kimg, and then continues from there
    with pytest.raises(ganforge.GanforgeError, match="already reached train.kimg=1000"):
        ganforge.train(resume=run, minutes=0.02, progress=False)
    ganforge.train(resume=run, overrides=["train.kimg=2000", "optim.lr_kimg=2000"], minutes=0.02, progress=False)
    assert load_checkpoint(list_checkpoints(run)[-1])["nimg"] > ck["nimg"]


def test_a_run_longer_than_its_learning_rate_decay_is_refused_with_the_fix(tmp_path):
    """lr_final 0 and train.kimg past optim.lr_kimg would train the rest at learning rate 0: one message with the
    fix, for a new run and for a resume to a new length; the refused call leaves nothing in the way of the fix."""
    with pytest.raises(ganforge.GanforgeError, match=r"optim.lr_kimg \(0.128\) ends before train.kimg \(0.256\)"
                       r".*--set optim.lr_kimg=0.256"):
        ganforge.train("digits", overrides=TINY + ["optim.lr_kimg=0.128"], out=tmp_path / "new", progress=False)
    assert not (tmp_path / "new").exists()
    run = _train(tmp_path / "r", "optim.lr_kimg=0.256")
    with pytest.raises(ganforge.GanforgeError, match="--set optim.lr_kimg=0.512"):
        ganforge.train(resume=run, overrides=["train.kimg=0.512"], out=tmp_path / "more", progress=False)
    more = ganforge.train(resume=run, overrides=["train.kimg=0.512", "optim.lr_kimg=0.512"], out=tmp_path / "more",
                          progress=False)
    assert load_checkpoint(list_checkpoints(more)[-1])["nimg"] == 512
    # a floor or an undecayed schedule may run past the window: nothing is refused
    for extra in (["optim.lr_final=0.1"], ["optim.lr_schedule=constant"]):
        ganforge.train("digits", overrides=TINY + ["optim.lr_kimg=0.128"] + extra, out=tmp_path / extra[0][6:14],
                       progress=False)


def test_divergence_is_reported_without_overwriting(tmp_path):
    run = _train(tmp_path / "d")
    before = list_checkpoints(run)
    with pytest.raises(ganforge.GanforgeError, match="diverged"):
        ganforge.train(resume=run, overrides=["train.kimg=0.512", "optim.d_lr=1e30", "optim.g_lr=1e30"],
                       progress=False)
    assert list_checkpoints(run) == before


# ---- bad input: one clear line, non-zero exit, nothing destroyed ----------------------------------------



def test_cli_errors(tmp_path):
    one_line_error(run_cli("train", "nope"), "unknown preset 'nope'")
    one_line_error(run_cli("train", "--set", "train.kimgs=1"), "unknown key 'train.kimgs'", "train.kimg")
    one_line_error(run_cli("train", "--set", "train.batch=big"), "train.batch: expected an integer")
    one_line_error(run_cli("train", "--resume", str(tmp_path / "missing")), "no such run directory")
    one_line_error(run_cli("sample", str(tmp_path / "missing"), "--out", "x.npz"), "not found")


def test_corrupt_and_truncated_checkpoints(tmp_path):
    run = _train(tmp_path / "c")
    ckpts = list_checkpoints(run)
    latest = ckpts[-1]
    good = latest.read_bytes()
    latest.write_bytes(good[: len(good) // 2])  # truncated
    r = run_cli("train", "--resume", str(run))
    one_line_error(r, "corrupt or truncated", latest.name)
    latest.write_bytes(b"\x00garbage" * 100)  # corrupt
    one_line_error(run_cli("train", "--resume", str(run)), "corrupt or truncated")
    # nothing was destroyed: the earlier checkpoint is intact and resumable
    assert list_checkpoints(run) == ckpts
    r = run_cli("train", "--resume", str(ckpts[0]), "--quiet")
    assert r.returncode == 0, r.stderr
    aside = list((run / "checkpoints" / "superseded").glob(f"*-from-{ckpts[0].stem}/{latest.name}"))
    assert len(aside) == 1  # moved aside into the folder of this branch, not deleted


def test_out_dir_with_a_run_is_not_overwritten(tmp_path):
    run = _train(tmp_path / "o")
    before = sorted(p.name for p in list_checkpoints(run))
    sets = [a for kv in TINY for a in ("--set", kv)]
    one_line_error(run_cli("train", "--out", str(run), *sets), "already holds a run", "--resume")
    assert sorted(p.name for p in list_checkpoints(run)) == before


def test_resume_cannot_change_the_model(tmp_path):
    run = _train(tmp_path / "x")
    one_line_error(run_cli("train", "--resume", str(run), "--set", "model.z_dim=4"), "cannot change")


def test_resume_finished_run_says_how_to_extend(tmp_path):
    run = _train(tmp_path / "y")
    one_line_error(run_cli("train", "--resume", str(run)), "already reached", "train.kimg")


def test_presets_command():
    r = run_cli("presets")
    assert r.returncode == 0
    for name in ("digits", "ring", "grid"):
        assert any(line.startswith(name) for line in r.stdout.splitlines())


def test_host_resident_data_resumes_exactly(tmp_path):
    """train.data_device=host: the data order comes from its own generator, saved in the checkpoint."""
    extra = ["train.data_device=host", "train.tick_kimg=0.128"]
    full = _train(tmp_path / "f", *extra, kimg=0.256)
    half = _train(tmp_path / "h", *extra, kimg=0.128)
    ganforge.train(resume=half, overrides=["train.kimg=0.256"], progress=False)
    a, b = (load_checkpoint(list_checkpoints(r)[-1]) for r in (full, half))
    assert "gen" in a["data"]
    for k in a["G_ema"]:
        assert torch.equal(a["G_ema"][k], b["G_ema"][k]), k


def test_resume_with_lazy_r1_r2_and_a_gamma_schedule_is_exact(tmp_path):
    extra = ["loss.name=relativistic", "loss.r1_gamma=1.0", "loss.r2_gamma=1.0", "loss.reg_interval=3",
             "loss.gamma_schedule=linear", "loss.gamma_kimg=0.3", "train.tick_kimg=0.112", "train.batch=16"]
    full = _train(tmp_path / "f", *extra, kimg=0.224)
    half = _train(tmp_path / "h", *extra, kimg=0.112)  # 7 steps: the lazy interval (3) straddles the resume
    ganforge.train(resume=half, overrides=["train.kimg=0.224"], progress=False)
    a, b = (load_checkpoint(list_checkpoints(r)[-1]) for r in (full, half))
    for name in ("G_ema", "G", "D"):
        for k in a[name]:
            assert torch.equal(a[name][k], b[name][k]), (name, k)
