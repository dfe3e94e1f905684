"""`ganforge eval`: a run or a samples file against its dataset, results stamped with their protocol."""
import json

import numpy as np

import ganforge

from .conftest import run_cli


def _ring_run(tmp_path):
    return ganforge.train("ring", overrides=["train.kimg=0.5", "train.tick_kimg=0.5", "train.batch=64",
                                             "model.g_width=16", "model.d_width=16", "data.n=1000",
                                             "optim.lr_kimg=0.5"],
                          out=tmp_path / "ring", progress=False)


def test_eval_run_dir_toy_metrics(tmp_path):
    run = _ring_run(tmp_path)
    # the preset computes the toy metrics at every tick
    tick = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()][-1]
    assert set(tick["metrics"]["toy"]) == {"modes", "hq", "reverse_kl"}
    r = run_cli("eval", str(run), "--json", str(tmp_path / "m.json"))
    assert r.returncode == 0, r.stderr
    assert "toy" in r.stdout and "modes=" in r.stdout
    res = json.loads((tmp_path / "m.json").read_text())
    assert res["toy"]["protocol"]["n_fake"] == 2500
    assert 0 <= res["toy"]["values"]["modes"] <= 8
    # the run keeps a record of its evaluations
    line = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert line["name"] == "toy" and line["protocol"]["protocol"].startswith("PacGAN")


def test_eval_samples_npz(tmp_path):
    run = _ring_run(tmp_path)
    assert run_cli("sample", str(run), "--n", "500", "--out", str(tmp_path / "s.npz")).returncode == 0
    r = run_cli("eval", str(tmp_path / "s.npz"), "--metrics", "toy,fid", "--set", "data.name=ring",
                "--set", "data.n=1000")
    assert r.returncode == 0, r.stderr
    assert "fid" in r.stdout and "toy" in r.stdout


def test_eval_a_checkpoint_scores_its_generator(tmp_path):
    """RUN_DIR/checkpoints/ckpt-<N>.pt is scored with that checkpoint's G_ema: the newest checkpoint gives exactly
    the run's numbers (the exported generator is the last tick's), an earlier one its own, logged at its kimg."""
    from ganforge.evaluation import evaluate_target

    run = ganforge.train("ring", overrides=["train.kimg=1", "train.tick_kimg=0.5", "train.batch=64",
                                            "train.keep_checkpoints=0", "model.g_width=16", "model.d_width=16",
                                            "data.n=1000", "optim.lr_kimg=1"],
                         out=tmp_path / "ring", progress=False)
    ckpts = sorted((run / "checkpoints").glob("ckpt-*.pt"))
    assert len(ckpts) == 2
    whole = evaluate_target(run, ["toy", "fid"], n=500)
    last = evaluate_target(ckpts[-1], ["toy", "fid"], n=500)
    first = evaluate_target(ckpts[0], ["toy", "fid"], n=500)
    assert last["fid"].values == whole["fid"].values and last["toy"].values == whole["toy"].values
    assert first["fid"].values["fid"] != whole["fid"].values["fid"]
    logged = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [round(x["kimg"], 3) for x in logged if x["name"] == "fid"] == [1.024, 1.024, 0.512]
    # the CLI takes it too
    r = run_cli("eval", str(ckpts[0]), "--metrics", "toy", "--n", "500")
    assert r.returncode == 0, r.stderr
    assert f"modes={first['toy'].values['modes']}" in r.stdout


def test_eval_checkpoint_errors(tmp_path):
    """A checkpoint outside its run, a missing or truncated one, or one of another model: one clear message each."""
    run = _ring_run(tmp_path)
    ckpt = sorted((run / "checkpoints").glob("ckpt-*.pt"))[-1]
    loose = tmp_path / "loose.pt"
    loose.write_bytes(ckpt.read_bytes())
    r = run_cli("eval", str(loose))
    assert "Traceback" not in r.stderr and r.returncode == 2 and "RUN_DIR/checkpoints/ckpt-<N>.pt" in r.stderr
    r = run_cli("eval", str(run / "checkpoints" / "ckpt-0000999999.pt"))
    assert "Traceback" not in r.stderr and r.returncode == 2 and "not found" in r.stderr
    bad = run / "checkpoints" / "ckpt-0000999999.pt"
    bad.write_bytes(ckpt.read_bytes()[:100])
    r = run_cli("eval", str(bad))
    assert "Traceback" not in r.stderr and r.returncode == 2 and "corrupt or truncated" in r.stderr
    other = ganforge.train("ring", overrides=["train.kimg=0.5", "train.tick_kimg=0.5", "train.batch=64",
                                              "model.g_width=32", "model.d_width=16", "data.n=1000",
                                              "optim.lr_kimg=0.5"], out=tmp_path / "wide", progress=False)
    alien = run / "checkpoints" / "ckpt-0000999998.pt"
    alien.write_bytes(sorted((other / "checkpoints").glob("ckpt-*.pt"))[-1].read_bytes())
    r = run_cli("eval", str(alien))
    assert "Traceback" not in r.stderr and r.returncode == 2 and "do not match" in r.stderr


def test_eval_errors(tmp_path):
    np.savez(tmp_path / "bad.npz", other=np.zeros(3))
    r = run_cli("eval", str(tmp_path / "bad.npz"), "--set", "data.name=ring")
    assert r.returncode == 2 and "expected an array named 'images'" in r.stderr
    r = run_cli("eval", str(tmp_path / "bad.npz"))
    assert r.returncode == 2 and "--set data.name" in r.stderr
    r = run_cli("eval", str(tmp_path / "nothing"))
    assert r.returncode == 2 and "expected a run directory" in r.stderr
    assert "Traceback" not in r.stderr


def test_import_option_registers_components(tmp_path):
    (tmp_path / "my_losses.py").write_text(
        "from ganforge.losses import LOSSES, AdversarialLoss\n"
        "LOSSES.register('my-hinge')(AdversarialLoss(d=lambda r, f, s: (1 - r).clamp(min=0).mean() + "
        "(1 + f).clamp(min=0).mean(), g=lambda r, f: -f.mean(), smoothing=False, probability=False))\n")
    from .conftest import TINY

    sets = [a for kv in TINY + ["loss.name=my-hinge"] for a in ("--set", kv)]
    r = run_cli("--import", "my_losses", "train", "digits", "--out", str(tmp_path / "run"), "--quiet", *sets,
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = run_cli("--import", "no_such_module_xyz", "presets")
    assert r.returncode == 2 and "--import no_such_module_xyz" in r.stderr
