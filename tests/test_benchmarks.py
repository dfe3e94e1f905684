"""The benchmark scripts run and print their tables (correctness only: tests never assert on wall-clock)."""
import subprocess
import sys

from .conftest import ROOT


def test_throughput_quick_prints_the_table():
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--quick", "--threads", "1",
                        "--device", "cpu", "--ref-workers", "0,1", "--profile"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.split()[:2] == ["batch", "reference,"])
    assert "0 workers" in lines[head] and "1 workers" in lines[head]  # both references measured
    assert any("convolutions take" in line for line in lines[head + 3:])  # --profile, after the row
    assert "ganforge[" in lines[head] and "x ref" in lines[head] and "MFU" in lines[head] and "ceiling" in lines[head]
    row = lines[head + 2].replace("|", " ").split()
    assert row[0] == "8" and all(float(v.rstrip("x%")) > 0 for v in row[1:10]), row
