"""Reliability: nothing a user has is lost or overwritten, bad input is one clear line (exit 2), and a run that is
killed, preempted or raced survives. Three parts: the catalogue of bad inputs (in-process CLI calls), run
ownership and resume rules, and fault injection (kill -9, SIGTERM) with equality to an uninterrupted run."""
from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import ganforge
from ganforge.cli import main
from ganforge.errors import GanforgeError
from ganforge.training.checkpoint import list_checkpoints, load_checkpoint
from ganforge.training.rundir import LOCK

from .conftest import TINY

SETS = [a for kv in TINY for a in ("--set", kv)]


def _tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return ganforge.train("digits", overrides=TINY, out=tmp_path_factory.mktemp("rel") / "run", progress=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory, run) -> Path:
    """The inputs of the catalogue, and a copy of a run, made once."""
    d = tmp_path_factory.mktemp("inputs")
    (d / "existing.npz").write_bytes(b"precious")
    (d / "dir.npz").mkdir()
    (d / "latin1.yaml").write_bytes("train: {kimg: 1}\n# caf\xe9\n".encode("latin-1"))
    np.savez(d / "objects.npz", images=np.array([{"a": 1}, None], dtype=object))
    np.savez(d / "strings.npz", samples=np.array([["a", "b"], ["c", "d"]]))
    np.save(d / "strings.npy", np.array(["x", "y"]))
    with open(d / "npy_named.npz", "wb") as f:  # a .npy file under a .npz name
        np.save(f, np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32))
    # an image folder with a dangling link and a link loop
    imgs = d / "imgs"
    imgs.mkdir()
    from PIL import Image

    for i in range(20):
        Image.fromarray(np.full((8, 8), i * 10, np.uint8)).save(imgs / f"{i}.png")
    import shutil

    shutil.copytree(imgs, d / "clean")
    (imgs / "dangling.png").symlink_to(d / "nowhere.png")
    (imgs / "loop_a.png").symlink_to(imgs / "loop_b.png")
    (imgs / "loop_b.png").symlink_to(imgs / "loop_a.png")
    # an IDX header whose dimensions multiply past 2^64
    idx = d / "idx"
    idx.mkdir()
    (idx / "train-images-idx3-ubyte").write_bytes(bytes([0, 0, 8, 3]) + (0xFFFFFFFF).to_bytes(4, "big") * 3)
    (idx / "train-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1]) + (3).to_bytes(4, "big") + b"\0\0\0")
    # a user's own, commented config in the folder they point --out at
    mine = d / "mine"
    mine.mkdir()
    (mine / "config.yaml").write_text("# my notes\ndata: {name: digits, resolution: 8}\n")
    return d


# ---------------------------------------------------------------------------------------------------------------
# the catalogue: every input below is one line on stderr, exit 2, no traceback, and leaves every file as it was

CATALOGUE = [
    # config values: checked where they are defined
    (["train", "digits", "--set", "model.g_norm=batch", "--set", "train.batch=1"], "batch norm in G needs at least 2"),
    (["train", "digits", "--set", "train.kimg=1e306"], "train.kimg: at most"),
    (["train", "digits", "--set", "train.kimg=400"], "would train at learning rate 0"),  # lr decays to 0 at 200
    (["train", "digits", "--set", "train.grid_size=0"], "train.grid_size: must be > 0"),
    (["train", "digits", "--set", "train.grid_size=-4"], "train.grid_size: must be > 0"),
    (["train", "digits", "--set", "train.metrics_n=0"], "train.metrics_n: must be > 0"),
    (["train", "ring", "--set", "data.n=-5"], "data.n: must be > 0"),
    (["train", "digits", "--set", "optim.weight_decay=-1"], "optim.weight_decay: must be >= 0"),
    (["train", "digits", "--set", "train.seed=100000000000000000000"], "train.seed: a seed is a whole number"),
    (["train", "digits", "--set", "train.seed=-1"], "train.seed: a seed is a whole number"),
    (["train", "digits", "--set", "train.seed=1e20"], "train.seed: expected an integer"),
    (["train", "{d}/latin1.yaml"], "is not UTF-8 text"),
    (["train", "digits", "--minutes", "0"], "--minutes: must be a positive number"),
    (["train", "digits", "--minutes", "nan"], "--minutes: must be a positive number"),
    (["train", "digits", "--set", "train.device=cuda:7"], "train.device=cuda:7"),
    (["train", "{d}/mine/config.yaml", "--out", "{d}/mine"], "already holds files a run writes (config.yaml)"),
    (["train", "digits", "--out", "{run}"], "already holds a run"),
    # data
    (["train", "digits", "--set", "data.name=folder", "--set", "data.path={d}/imgs"], "dangling or looping link"),
    (["train", "digits", "--set", "data.name=mnist", "--set", "data.path={d}/idx"], "IDX file: its header says"),
    # sampling
    (["sample", "{run}", "--out", "{d}/existing.npz"], "exists; choose another name, or pass --overwrite"),
    (["sample", "{run}", "--out", "{d}/dir.npz"], "is a directory; give a file name"),
    (["sample", "{run}", "--out", "{d}/s.npz", "--seed", "100000000000000000000"], "seed: a seed is a whole number"),
    (["sample", "{run}", "--out", "{d}/s.npz", "--n", "1000000000000"], "GiB"),
    (["sample", "{run}", "--out", "{d}/s.npz", "--device", "cuda"], "CUDA is not available"),
    (["sample", "{run}", "--out", "{d}/s.npz", "--truncation", "0"], "truncation: must be a number > 0"),
    (["sample", "{run}", "--out", "{d}/s.npz", "--truncation", "nan"], "truncation: must be a number > 0"),
    (["sample", "{run}", "--out", "{d}/s.npz", "--truncation", "-1"], "truncation: must be a number > 0"),
    (["sample", "{run}", "--out", "{d}/s.npz", "--n", "0"], "--n must be positive"),
    # eval and project
    (["eval", "{run}", "--device", "cuda"], "CUDA is not available"),
    (["eval", "{run}", "--n", "-5"], "--n: the number of samples"),
    (["eval", "{run}", "--seed", "100000000000000000000"], "--seed: a seed is a whole number"),
    (["eval", "{d}/objects.npz", "--set", "data.name=digits"], "holds Python objects"),
    (["eval", "{d}/strings.npz", "--set", "data.name=ring"], "expected numbers"),
    (["eval", "{run}", "--json", "{d}/existing.npz"], "exists; choose another name"),
    (["report", "{run}", "--out", "{d}/existing.npz"], "exists and is not a ganforge report"),
    (["project", "{run}", "{d}/objects.npz", "--out", "{d}/p.npz"], "holds Python objects"),
    (["project", "{run}", "{d}/strings.npy", "--out", "{d}/p.npz"], "expected numbers"),
    (["project", "{run}", "{d}/clean", "--out", "{d}/p.npz", "--lr", "nan"], "projection: need"),
    (["project", "{run}", "{d}/clean", "--out", "{d}/p.npz", "--device", "cuda"], "CUDA is not available"),
    (["project", "{run}", "{d}/imgs", "--out", "{d}/p.npz"], "dangling or looping link"),
    # resume
    (["train", "--resume", "{run}/checkpoints/nope.pt"], "no such run directory or checkpoint file"),
    (["train", "--resume", "{run}", "--set", "model.z_dim=4"], "cannot change when resuming"),
]


@pytest.mark.parametrize("args,fragment", CATALOGUE, ids=[" ".join(a)[:60] for a, _ in CATALOGUE])
def test_bad_input_is_one_clear_line(args, fragment, run, files, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where runs/ would go
    before = _tree_hashes(files), _tree_hashes(run)
    argv = [a.format(d=files, run=run) for a in args]
    assert main(argv) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 1 and err[0].startswith("ganforge: error: ") and fragment in err[0], err
    assert (_tree_hashes(files), _tree_hashes(run)) == before  # nothing the user had changed
    assert not (tmp_path / "runs").exists()  # and no run directory was left behind


def test_inputs_that_are_fine_now(run, files, tmp_path, capsys):
    """What used to end in a traceback and has a right answer: a .npy under a .npz name is read as what it is;
    skip_corrupt skips dangling links and link loops like unreadable images."""
    assert main(["eval", f"{files}/npy_named.npz", "--metrics", "fid", "--set", "data.name=ring",
                 "--set", "data.n=200"]) == 0
    out = tmp_path / "f"
    with pytest.warns(UserWarning, match="skipped 3 unreadable"):
        ganforge.train("digits", overrides=TINY + ["data.name=folder", f"data.path={files}/imgs",
                                                   "data.skip_corrupt=true", "data.resolution=8"], out=out,
                       progress=False)
    assert list_checkpoints(out)


def test_metrics_refuse_empty_inputs(run):
    from ganforge.data import build_dataset
    from ganforge.config import DataConfig
    from ganforge.metrics import evaluate

    real = build_dataset(DataConfig(name="digits", resolution=8))
    with pytest.raises(GanforgeError, match="no generated samples"):
        evaluate(real.x[:0], real, ["class_kl"])


def test_report_survives_hand_edited_logs(run, tmp_path):
    """A seeded fuzz of log.jsonl: values of every type in every field, lines that are not objects, a damaged
    config.yaml: the report is written or refused with one clear error, never a traceback."""
    import shutil

    from ganforge.report import read_log, render_report

    rng = random.Random(0)
    values = ["abc", [], {}, None, True, -1, 0, 1e300, float("inf"), float("nan"), {"a": 1}, [1, 2], 10 ** 30]
    keys = ["kimg", "nimg", "tick", "time_s", "img_per_s", "loss_d", "d_real", "metrics", "event", "noise_std", "from"]
    for trial in range(40):
        d = tmp_path / f"r{trial}"
        shutil.copytree(run, d, ignore=shutil.ignore_patterns("checkpoints", LOCK))
        recs = [json.loads(x) for x in (d / "log.jsonl").read_text().splitlines()]
        recs += [{"event": "resume", "kimg": 0.128, "from": "x"}, dict(recs[0])]
        for _ in range(rng.randint(1, 4)):
            rng.choice(recs)[rng.choice(keys)] = rng.choice(values)
        (d / "log.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n[1]\n{cut")
        if trial % 5 == 0:
            (d / "config.yaml").write_text(rng.choice(["train: 5", "- a", "train: {kimg: abc}", ": :"]))
        try:
            assert "<html" in render_report(d, read_log(d))
        except GanforgeError:
            pass


# ---------------------------------------------------------------------------------------------------------------
# run ownership and resume


def _bg(*args: str, cwd: Path | None = None) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "ganforge", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)


def _wait_for(cond, timeout: float = 60.0, poll: float = 0.05) -> None:
    t0 = time.time()
    while not cond():
        assert time.time() - t0 < timeout, "timed out"
        time.sleep(poll)


def test_two_runs_on_one_out_the_second_is_refused(tmp_path):
    out = tmp_path / "shared"
    first = _bg("train", "digits", "--out", str(out), "--quiet", *SETS, "--set", "train.kimg=1000",
                "--set", "optim.lr_kimg=1000",
                "--set", "train.tick_kimg=3")  # its first tick comes after the second run has tried
    try:
        _wait_for(lambda: (out / LOCK).exists())  # before its first tick: the old guard saw nothing here
        second = subprocess.run([sys.executable, "-m", "ganforge", "train", "digits", "--out", str(out), "--quiet",
                                 *SETS], capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
        assert second.returncode == 2 and "is in use by another ganforge run" in second.stderr, second.stderr
        assert f"pid {first.pid}" in second.stderr
        _wait_for(lambda: list_checkpoints(out))
    finally:
        first.send_signal(signal.SIGTERM)
        stdout, _ = first.communicate(timeout=60)
    assert first.returncode == 0 and "stopped by SIGTERM" in stdout
    assert not (out / LOCK).exists()  # released at the end


def test_a_stale_lock_is_taken_over(tmp_path):
    out = tmp_path / "stale"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    (out / LOCK).write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}))
    ganforge.train("digits", overrides=TINY, out=out, progress=False)
    assert list_checkpoints(out) and not (out / LOCK).exists()


def test_resume_of_a_checkpoint_file_never_writes_next_to_it(run, tmp_path):
    """A checkpoint outside a run directory (downloaded, copied) needs --out; --out never touches the source."""
    loose = tmp_path / "Downloads"
    loose.mkdir()
    ck = loose / list_checkpoints(run)[0].name
    ck.write_bytes(list_checkpoints(run)[0].read_bytes())
    with pytest.raises(GanforgeError, match="not inside a run directory.*--out"):
        ganforge.train(resume=ck, overrides=["train.kimg=0.384"], progress=False)
    assert sorted(p.name for p in loose.iterdir()) == [ck.name] and sorted(p.name for p in tmp_path.iterdir()) == \
        ["Downloads"]
    before = _tree_hashes(run)
    new = ganforge.train(resume=list_checkpoints(run)[-1], out=tmp_path / "continued",
                         overrides=["train.kimg=0.384"], progress=False)
    assert _tree_hashes(run) == before  # the source run is untouched
    assert load_checkpoint(list_checkpoints(new)[-1])["nimg"] == 384
    log = [json.loads(x) for x in (new / "log.jsonl").read_text().splitlines()]
    assert log[0]["event"] == "resume" and log[0]["from"].endswith("ckpt-0000000256.pt")


def test_resumes_from_an_old_checkpoint_keep_every_branch(tmp_path):
    out = ganforge.train("digits", overrides=TINY + ["train.keep_checkpoints=0"], out=tmp_path / "b", progress=False)
    first = list_checkpoints(out)[0]
    branches = []
    for _ in range(2):
        ganforge.train(resume=first, progress=False)
        branches = sorted((out / "checkpoints" / "superseded").iterdir())
    assert len(branches) == 2  # the second resume did not overwrite what the first set aside
    assert all([p.name for p in b.iterdir()] == ["ckpt-0000000256.pt"] for b in branches)


def test_a_failed_resume_changes_nothing(tmp_path):
    vec = tmp_path / "v.npy"
    np.save(vec, np.random.default_rng(0).normal(size=(300, 2)).astype(np.float32))
    ring_tiny = ["train.kimg=0.256", "train.tick_kimg=0.064", "train.batch=32", "model.g_width=16",
                 "model.d_width=16", "train.metrics=[]", "train.grid_size=16", "data.name=vectors",
                 f"data.path={vec}", "train.keep_checkpoints=0"]
    out = ganforge.train("ring", overrides=ring_tiny, out=tmp_path / "v", progress=False)
    ckpts = list_checkpoints(out)
    before = _tree_hashes(out)
    vec.rename(tmp_path / "gone.npy")  # the data is gone: the resume fails before it moves anything
    with pytest.raises(GanforgeError, match="does not exist"):
        ganforge.train(resume=ckpts[0], progress=False)
    assert _tree_hashes(out) == before
    # the data shrank: named, refused, and accepted on request (in a fresh order)
    np.save(vec, np.random.default_rng(1).normal(size=(200, 2)).astype(np.float32))
    with pytest.raises(GanforgeError, match=r"training data changed.*items: 300 then, 200 now.*--allow-data-change"):
        ganforge.train(resume=out, overrides=["train.kimg=0.320"], progress=False)
    assert _tree_hashes(out) == before
    ganforge.train(resume=out, overrides=["train.kimg=0.320"], allow_data_change=True, progress=False)
    assert list_checkpoints(out)[-1].name == "ckpt-0000000320.pt"


def test_checkpoints_that_are_not_what_they_claim(run, tmp_path):
    ck = load_checkpoint(list_checkpoints(run)[-1])
    other = tmp_path / "other" / "checkpoints"
    other.mkdir(parents=True)
    (tmp_path / "other" / "log.jsonl").write_text("")
    ck["G"] = {k: torch.zeros(3) for k in ck["G"]}  # the right keys, tensors of another model
    torch.save(ck, other / "ckpt-0000000256.pt")
    with pytest.raises(GanforgeError, match="does not match this model"):
        ganforge.train(resume=tmp_path / "other", overrides=["train.kimg=1"], progress=False)

    class Payload:  # a pickle that would run code when loaded
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path}/pwned",))

    torch.save({**ck, "G": Payload()}, other / "ckpt-0000000256.pt")
    with pytest.raises(GanforgeError, match="refusing it"):
        ganforge.train(resume=tmp_path / "other", overrides=["train.kimg=1"], progress=False)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.filterwarnings("ignore:folder. skipped")
def test_a_damaged_folder_cache_is_rebuilt(files, tmp_path):
    from ganforge.config import DataConfig
    from ganforge.data import build_dataset

    cfg = DataConfig(name="folder", path=str(files / "imgs"), resolution=8, skip_corrupt=True,
                     cache_dir=str(tmp_path))
    with pytest.warns(UserWarning):
        good = build_dataset(cfg)
    (cache,) = (tmp_path / "folder").glob("*.npz")
    for damage in (b"", cache.read_bytes()[:100], b"PK\x03\x04garbage"):
        cache.write_bytes(damage)
        with pytest.warns(UserWarning, match="damaged cache"):
            again = build_dataset(cfg)
        assert torch.equal(again.x, good.x)


def test_a_run_that_died_before_its_first_checkpoint_can_start_again(tmp_path):
    out = tmp_path / "d"
    with pytest.raises(GanforgeError, match="diverged"):
        ganforge.train("digits", overrides=TINY + ["optim.d_lr=1e30", "optim.g_lr=1e30"], out=out, progress=False)
    assert not list_checkpoints(out) and (out / "log.jsonl").exists()
    ganforge.train("digits", overrides=TINY, out=out, progress=False)
    assert list_checkpoints(out) and len(list(out.glob("log.failed-*.jsonl"))) == 1


def test_stale_temporary_files_are_removed(tmp_path):
    out = ganforge.train("digits", overrides=TINY + ["train.kimg=0.128"], out=tmp_path / "t", progress=False)
    junk = [out / "checkpoints" / ".ckpt-0000000256.pt.tmp4242", out / "generator" / ".model.safetensors.ab12.tmp"]
    for j in junk:
        j.write_bytes(b"x" * 1000)
    ganforge.train(resume=out, overrides=["train.kimg=0.256"], progress=False)
    assert not any(j.exists() for j in junk)


# ---------------------------------------------------------------------------------------------------------------
# fault injection: kill -9 at random moments and inside a checkpoint write, SIGTERM; then resume == uninterrupted

FAULT = TINY + ["train.kimg=1.536", "train.tick_kimg=0.128", "train.keep_checkpoints=2"]
TOTAL = 1536


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> Path:
    return ganforge.train("digits", overrides=FAULT, out=tmp_path_factory.mktemp("ref") / "r", progress=False)


@pytest.fixture(scope="module")
def reference(reference_run) -> dict:
    return load_checkpoint(list_checkpoints(reference_run)[-1])


def _seconds_per_tick(run: Path) -> float:
    """How long one tick of FAULT takes on this machine, from the uninterrupted run's log."""
    times = [r["time_s"] for r in map(json.loads, (run / "log.jsonl").read_text().splitlines())
             if r.get("event") == "tick"]
    return (times[-1] - times[0]) / (len(times) - 1)


def _same_as(reference: dict, out: Path) -> None:
    final = load_checkpoint(list_checkpoints(out)[-1])
    assert final["nimg"] == reference["nimg"] == TOTAL
    for net in ("G", "D", "G_ema"):
        for k in reference[net]:
            assert torch.equal(final[net][k], reference[net][k]), (net, k)
    assert torch.equal(final["rng"], reference["rng"])


def _finish(out: Path) -> None:
    """Resume until the run is complete; a run killed before its first checkpoint is started again."""
    for _ in range(5):
        if list_checkpoints(out) and load_checkpoint(list_checkpoints(out)[-1])["nimg"] >= TOTAL:
            return
        if list_checkpoints(out):
            ganforge.train(resume=out, progress=False)
        else:
            ganforge.train("digits", overrides=FAULT, out=out, progress=False)
    raise AssertionError("did not finish")


def _newest(out: Path) -> int:
    names = [p.name for p in list_checkpoints(out)]
    return int(names[-1][5:15]) if names else 0


def test_kill_9_at_random_moments_then_resume_is_exact(reference, reference_run, tmp_path):
    """Each trial waits for a random tick (none: killed while starting), then a random fraction of a tick.

    The fraction is of this machine's tick time (a fixed sleep outran a whole fast run); the last tick waited for
    leaves two more before the end, so every kill lands mid-run.
    """
    rng = random.Random(1234)
    tick_s = _seconds_per_tick(reference_run)
    points = []
    for trial, tick in enumerate([0] + rng.sample(range(1, 10), 3)):
        out = tmp_path / f"k{trial}"
        p = _bg("train", "digits", "--out", str(out), "--quiet", *[a for kv in FAULT for a in ("--set", kv)])
        _wait_for(lambda: (out / LOCK).exists() and _newest(out) >= 128 * tick, 120, poll=0.005)
        time.sleep(rng.uniform(0, tick_s))
        p.kill()  # SIGKILL: no handler runs
        p.communicate()
        points.append(_newest(out))
        assert p.returncode == -signal.SIGKILL and _newest(out) < TOTAL  # killed mid-run, not after it
        assert not any(q.name.startswith("ckpt") and not q.name.endswith(".pt")
                       for q in (out / "checkpoints").glob("*")) if (out / "checkpoints").exists() else True
        _finish(out)
        _same_as(reference, out)
    print("killed with the newest checkpoint at nimg:", points)


def test_kill_9_inside_a_checkpoint_write_then_resume_is_exact(reference, tmp_path):
    """A driver kills its own process after half of the third checkpoint's bytes are on disk."""
    out = tmp_path / "w"
    driver = tmp_path / "driver.py"
    driver.write_text(f'''
import os, signal, sys
import ganforge.utils.files as files
import ganforge.training.checkpoint as checkpoint
real, calls = files.atomic_write, []
def dying_write(path, content):
    if str(path).endswith(".pt"):
        calls.append(path)
        if len(calls) == 3:
            def half(f):
                import io, torch
                buf = io.BytesIO(); content(buf); f.write(buf.getvalue()[: len(buf.getvalue()) // 2]); f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            return real(path, half)
    return real(path, content)
checkpoint.atomic_write = dying_write
import ganforge
ganforge.train("digits", overrides={FAULT!r}, out={str(out)!r}, progress=False)
''')
    r = subprocess.run([sys.executable, str(driver)], capture_output=True, text=True,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == -signal.SIGKILL, r.stderr
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert [p.name for p in list_checkpoints(out)] == ["ckpt-0000000128.pt", "ckpt-0000000256.pt"]
    (half,) = [n for n in names if n.startswith(".")]
    assert half.startswith(".ckpt-0000000384.pt.") and half.endswith(".tmp")  # the half file has a temp name
    _finish(out)
    assert not [p for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]  # cleaned
    _same_as(reference, out)


def test_sigterm_stops_with_a_checkpoint_and_resume_is_exact(reference, tmp_path):
    out = tmp_path / "term"
    p = _bg("train", "digits", "--out", str(out), "--quiet", *[a for kv in FAULT for a in ("--set", kv)])
    _wait_for(lambda: list_checkpoints(out), 120)
    p.send_signal(signal.SIGTERM)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 0, stderr
    assert "stopped by SIGTERM" in stdout and "--resume" in stdout
    stopped = load_checkpoint(list_checkpoints(out)[-1])["nimg"]
    assert 0 < stopped < TOTAL and stopped % 16 == 0  # a step boundary, not only a tick: nothing trained is lost
    assert json.loads((out / "generator" / "config.json").read_text())["nimg"] == stopped
    ganforge.train(resume=out, progress=False)
    _same_as(reference, out)
