"""The benchmark scripts run and print their tables (correctness only: tests never assert on wall-clock)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT


def test_throughput_quick_prints_the_table():
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--quick", "--threads", "1",
                        "--device", "cpu", "--ref-workers", "0,1", "--profile"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.split()[:2] == ["batch", "reference,"])
    assert "0 workers" in lines[head] and "1 workers" in lines[head]  # both references measured
    assert any("convolutions take" in line for line in lines[head + 3:])  # --profile, after the row
    assert "ganforge[" in lines[head] and "x ref" in lines[head] and "MFU" in lines[head] and "ceiling" in lines[head]
    row = lines[head + 2].replace("|", " ").split()
    assert row[0] == "8" and all(float(v.rstrip("x%")) > 0 for v in row[1:10]), row


def test_conv_weight_grad_benchmark_times_every_layer_both_ways():
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "conv_weight_grad.py"), "--net", "fashion",
                        "--batch", "4", "--repeats", "1", "--threads", "1"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = [line.split() for line in r.stdout.splitlines()[2:]]
    layers = [row for row in rows if row[1] in ("conv", "convT")]
    assert len(layers) == 2 * 6  # the fashion DCGAN's 3 + 3 convolutions, in bf16 and in fp32
    for row in layers:
        assert float(row[-4]) > 0 and float(row[-3]) > 0 and row[-2] in ("kernel", "product"), row
        assert row[-1] == "kernel" or row[0] == "bf16"  # 'auto' never picks the product in fp32
    assert [row[0] for row in rows if row[1] == "all"] == ["bf16", "fp32"]


def test_conv_weight_grad_passes_table_has_three_passes_per_layer_as_shares_of_the_peak():
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "conv_weight_grad.py"), "--net", "fashion",
                        "--batch", "4", "--repeats", "1", "--threads", "1", "--dtypes", "fp32", "--passes"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if "forward ms" in line)
    assert "of the matmul peak measured now" in lines[head - 1] and "fp32" in lines[head - 1]
    rows = [line.split() for line in lines[head + 1:]]
    assert len(rows) == 6 + 1  # the fashion DCGAN's 3 + 3 convolutions, then the sum
    for row in rows:
        gflop, cells = float(row[-7]), [float(v) for v in row[-6:]]
        ms, pct = cells[0::2], cells[1::2]
        # the 128->1 head has 0.000 GFLOP at 3 decimals at batch 4, and so 0%: every pass still takes time
        assert row[0] == "fp32" and gflop >= 0 and all(t > 0 for t in ms) and all(v >= 0 for v in pct), row
        # each share is the layer's FLOPs (a backward pass computes as many as the forward) over the pass's time
        # and the peak, so a pass that takes less than half another's time has at least its share
        assert all(pct[i] >= pct[j] for i in range(3) for j in range(3) if ms[i] < 0.5 * ms[j]), row
    assert rows[-1][1:3] == ["all", "layers"] and all(float(v) > 0 for v in rows[-1][-6:]), rows[-1]
    for col in (-7, -6, -4, -2):  # GFLOP and the three passes' ms add up over the layers (each rounded)
        assert abs(float(rows[-1][col]) - sum(float(row[col]) for row in rows[:-1])) < 0.04, col


def test_bigan_benchmark_runs(tmp_path):
    tiny = ["train.kimg=0.256", "train.tick_kimg=0.128", "train.batch=32", "model.g_width=16", "model.d_width=16",
            "model.depth=2", "train.metrics=[]"]
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bigan.py"), "ring", "--n", "200",
                        "--out", str(tmp_path), *[a for s in tiny for a in ("--set", s)]],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    lines = {line.split()[0]: line for line in r.stdout.splitlines() if line.startswith("  ")}
    assert set(lines) == {"encoder", "projection", "chance"}
    for line in lines.values():
        assert "same mode" in line and "%" in line and "|G(z) - x|" in line


def test_encoder_benchmark_prints_every_method(tmp_path):
    tiny = ["data.resolution=8", "model.z_dim=8", "model.g_width=8", "model.d_width=8", "train.batch=16",
            "train.kimg=0.256", "train.tick_kimg=0.128", "train.metrics=[]"]
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "encoder.py"), "digits", "--variants",
                        "plain,bigan-latent", "--heldout", "40", "--encoder-steps", "10", "--refine", "2",
                        "--out", str(tmp_path), *[a for s in tiny for a in ("--set", s)]],
                       capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    rows = [line for line in r.stdout.splitlines() if line.startswith("  ") and "%" in line and "held-out" not in line]
    names = [row[:30].strip() for row in rows]
    assert names == ["bigan-latent: E(x)", "fitted E", "fitted E + 2 steps", "projection (16 x 300 steps)",
                     "chance (z from the prior)"], names
    for row in rows:
        agree, label, mse, ms = row[30:].split()
        assert 0 <= float(agree.rstrip("%")) <= 100 and 0 <= float(label.rstrip("%")) <= 100
        assert float(mse) > 0 and float(ms) > 0
    assert (tmp_path / "plain" / "encoder" / "reconstructions.png").is_file()


def test_stacked_benchmark_prints_a_row_per_config_and_seed(tmp_path):
    tiny = ["train.kimg=0.256", "train.tick_kimg=0.128", "data.resolution=8", "model.g_width=16",
            "model.d_width=16", "data.count=2000"]
    configs = ["--config", "plain=model.pack=1", "--config", "pac2=model.pack=2,optim.d_betas=[0.5,0.9]"]
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "stacked.py"), "--n", "500", "--out",
                        str(tmp_path / "runs"), *configs, *[a for s in tiny for a in ("--set", s)]],
                       capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1", "GANFORGE_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "# pac2: model.pack=2, optim.d_betas=[0.5,0.9]" in r.stdout
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in r.stdout.splitlines()
            if line.startswith(("| plain ", "| pac2 "))]
    assert [row[:3] for row in rows] == [["plain", "0", "0.256"], ["pac2", "0", "0.256"]]
    for row in rows:
        marginal, dependence = map(float, row[6].split(" + "))
        assert 1 <= int(row[4]) <= 1000 and 0 <= float(row[5]) <= 6.91 and "% (triple " in row[8]
        assert marginal + dependence == pytest.approx(float(row[5]), abs=2e-3) and 0 <= int(row[7]) <= 1000
    assert (tmp_path / "runs" / "pac2-s0" / "generator").is_dir()


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="Debian package dataset-fashion-mnist is not installed")
def test_own_images_benchmark_writes_pngs_and_measures_memory(tmp_path):
    script = str(ROOT / "benchmarks" / "own_images.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, script, "pngs", str(tmp_path / "p"), "--n", "40", "--size", "16", "--rgb"],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(list((tmp_path / "p").glob("*.png"))) == 40
    r = subprocess.run([sys.executable, script, "memory", str(tmp_path / "p"), "--minutes", "0.05", "--out",
                        str(tmp_path / "m")], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = [line.split("|")[1:-1] for line in r.stdout.splitlines() if line.startswith("| disk") or
            line.startswith("| memory")]
    assert [x[0].strip() for x in rows] == ["disk", "memory"]
    assert all(float(v) > 0 for x in rows for v in x[2:]), rows


def test_offline_eval_calibration_prints_every_condition(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "offline_eval.py"), "calibrate", "--data", "digits",
                        "--n", "300", "--quick", "--cache", str(tmp_path)],
                       capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    rows = {line[:28].strip(): line[28:].split() for line in r.stdout.splitlines()[2:]}
    assert set(rows) == {"training images", "held-out real", "held-out, blurred", "held-out, half the classes",
                         "held-out, pixels shuffled", "uniform noise"}
    assert all(len(v) == 9 for v in rows.values())                    # 8 metric columns and the seconds
    fd = {k: float(v[1]) for k, v in rows.items()}                    # ssl_fd
    assert fd["uniform noise"] > fd["held-out real"] and fd["held-out, pixels shuffled"] > fd["held-out real"]
    assert float(rows["training images"][7]) == 1.0                   # copy_share: the copies are flagged


def _throughput_module():
    import importlib.util
    spec = importlib.util.spec_from_file_location("throughput_bench", ROOT / "benchmarks" / "throughput.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _quick_table(tp, peak_stub, capsys):
    """Run throughput.py --quick (fp32, one reference) with the peak probe replaced by peak_stub; return its
    printed lines and the cells of the table's one row."""
    import torch

    tp.matmul_peak = peak_stub
    threads = torch.get_num_threads()
    try:
        tp.main(["--quick", "--threads", "1", "--device", "cpu", "--ref-workers", "0", "--variants", "fp32"])
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out.splitlines()
    head = next(i for i, line in enumerate(out) if line.split()[:2] == ["batch", "reference,"])
    return out, out[head + 2].replace("|", " ").split()


@pytest.mark.parametrize("peaks,best", [
    ({"fp32": 0.30e12, "bf16": 0.03e12}, "fp32"),   # no native bf16 (Ice Lake): bf16 is emulated, 10x slower
    ({"fp32": 0.20e12, "bf16": 0.40e12}, "bf16"),   # AVX512-BF16 (EPYC): bf16 at twice fp32's rate
    ({"fp32": 0.25e12, "bf16": 2.00e12}, "bf16"),   # AMX (Sapphire Rapids), or a GPU's tensor cores
])
def test_the_ceiling_and_mfu_use_the_fastest_precision_the_machine_has(peaks, best, capsys):
    """With the peak probe stubbed to each kind of machine, the table's MFU and ceiling divide by the fastest
    precision's peak, never by an emulated one."""
    import torch

    tp = _throughput_module()
    names = {torch.float32: "fp32", torch.bfloat16: "bf16"}
    stub = lambda device, n, dtype=torch.bfloat16: peaks[names[dtype]]  # noqa: E731
    assert tp.machine_peak(torch.device("cpu"), 8, stub) == (peaks[best], best, peaks)
    out, cells = _quick_table(tp, stub, capsys)
    assert f"MFU and the ceiling use the fastest, {best} ({peaks[best] / 1e12:.3f} TFLOP/s)" in out[0]
    # batch, reference img/s, its MFU | ganforge img/s, x ref, its MFU | GFLOP/img (ganforge's step), ceiling
    ref_speed, speed, mfu = float(cells[1]), float(cells[3]), float(cells[5].rstrip("%")) / 100
    gflop, ceiling = float(cells[6]), float(cells[7].rstrip("x"))
    # the printout rounds img/s to 0.1, GFLOP/img to 0.001, the ceiling to 0.01 and MFU to 0.01%: at --quick's
    # batch 8 on a busy machine a reference at 2-3 img/s is off by up to 2.5% from rounding alone, so each value
    # must lie within the bounds its rounded inputs allow (a fixed relative tolerance failed there)
    flop = (gflop - 5e-4) * 1e9, (gflop + 5e-4) * 1e9
    lo, hi = peaks[best] / flop[1] / (ref_speed + 0.05), peaks[best] / flop[0] / max(ref_speed - 0.05, 1e-9)
    assert lo - 0.005 <= ceiling <= hi + 0.005
    lo, hi = max(speed - 0.05, 0) * flop[0] / peaks[best], (speed + 0.05) * flop[1] / peaks[best]
    assert lo - 5e-5 <= mfu <= hi + 5e-5


def test_the_peak_is_measured_again_and_the_best_counts(capsys):
    """A first peak measurement that lands in a slow moment must not inflate the MFU: the probe runs again after
    every round, and the row divides by the best measurement (stubbed: 0.1 TFLOP/s at the start, 0.3 after)."""
    import torch

    tp = _throughput_module()
    calls = []

    def stub(device, n, dtype=torch.bfloat16):
        calls.append(dtype)
        slow = len(calls) <= 2  # the first measurement of both precisions
        return (0.1e12 if slow else 0.3e12) if dtype == torch.float32 else 0.01e12

    out, cells = _quick_table(tp, stub, capsys)
    assert "fp32 (0.100 TFLOP/s)" in out[0]  # the header reports the first measurement
    assert len(calls) == 4 and "the best of all 2 measurements: fp32 0.300, bf16 0.010 TFLOP/s." in out[-1]
    speed, mfu, gflop = float(cells[3]), float(cells[5].rstrip("%")) / 100, float(cells[6])
    lo, hi = max(speed - 0.05, 0) * (gflop - 5e-4) * 1e9 / 0.3e12, (speed + 0.05) * (gflop + 5e-4) * 1e9 / 0.3e12
    assert lo - 5e-5 <= mfu <= hi + 5e-5  # divided by 0.3, not by the slow 0.1 (which would triple it)


def test_budget_benchmark_runs_both_systems_and_resumes(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "budget.py"), "digits", "--minutes", "0.05", "--threads", "1",
           "--n", "300", "--out", str(tmp_path), "--plot", str(tmp_path / "p.png"),
           "--set", "train.tick_kimg=1", "--set", "train.metrics=[]"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    import json

    rows = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert sorted(r["system"] for r in rows) == ["ganforge", "reference"]
    for row in rows:  # both judged by the same metrics, on the digits' 16x16 shape (the reference's 32x32 resized)
        assert row["domain_fd"] > 0 and row["class_kl"] >= 0 and row["kimg"] > 0 and row["threads"] == 1
    assert "| digits | 1 | 0.05 | reference | 1 |" in r.stdout and (tmp_path / "p.png").stat().st_size > 1000
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout + r.stderr  # the rows are there: nothing is trained again
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 2 and '"system"' not in r.stdout
    # other overrides are another configuration: trained again, into a folder of its own, and a row of its own
    r = subprocess.run(cmd + ["--systems", "ganforge", "--set", "train.ema_kimg=0"], capture_output=True, text=True,
                       timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    rows = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and rows[-1]["set"][-1] == "train.ema_kimg=0"
    assert len(list(tmp_path.glob("ganforge-digits-t1-m0.05-s0*"))) == 2
    assert "| digits | 1 | 0.05 | ganforge (train.tick_kimg=1 train.metrics=[] train.ema_kimg=0) | 1 |" in r.stdout

    def report(*args: str) -> subprocess.CompletedProcess:  # budget.py on the same results, with these flags
        return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "budget.py"), "digits", "--out", str(tmp_path),
                               *args], capture_output=True, text=True, timeout=120)

    # --plot-seeds draws only the seeds asked for (nothing is trained: no --minutes)
    r = report("--plot", str(tmp_path / "s0.png"), "--plot-seeds", "0")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "s0.png").stat().st_size > 1000 and len((tmp_path / "results.jsonl").read_text().splitlines()) == 3
    r = report("--plot", str(tmp_path / "bad.png"), "--plot-seeds", "zero")
    assert r.returncode == 2 and "--plot-seeds: comma-separated seed numbers" in r.stderr
    assert not (tmp_path / "bad.png").exists()
    # a bad seed or budget is one message before anything runs (it was a traceback for --seeds)
    for flag, value, message in [("--seeds", "0,one", "--seeds: comma-separated seed numbers"),
                                 ("--minutes", "0", "--minutes: comma-separated minutes above 0"),
                                 ("--minutes", "1,ten", "--minutes: comma-separated minutes above 0")]:
        r = report("--systems", "ganforge", flag, value)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, (flag, value, r.stderr)
        assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 3
    # a point with fewer seeds than its line's others is marked with its count, and the report names it (rows copied
    # from the reference's own with another seed and another budget: its line has 2 seeds at one budget, 1 at the other)
    ref = next(row for row in rows if row["system"] == "reference")
    with open(tmp_path / "results.jsonl", "a") as f:
        f.write(json.dumps({**ref, "seed": 1}) + "\n" + json.dumps({**ref, "minutes": 0.1}) + "\n")
    r = report("--plot", str(tmp_path / "all.png"))
    assert r.returncode == 0 and (tmp_path / "all.png").stat().st_size > 1000, r.stdout + r.stderr
    marked = r.stdout.split("points marked with their seed count: ")[-1]  # the line's label, then the point
    assert marked.startswith("reference") and marked.strip().endswith(", 1 thread at 0.1 min: 1 of 2 seeds)"), r.stdout
