"""Health alarms at ticks: mode collapse, D overfitting, stalled progress; once per run, logged, in the report."""
from __future__ import annotations

import json

import ganforge
from ganforge.report import write_report
from ganforge.training import health
from ganforge.training.health import Health

from .conftest import TINY


def _tick(i: int, **kw) -> dict:
    return {"tick": i, **kw}


def test_mode_collapse_fires_once():
    h = Health()
    assert h.check(_tick(1, metrics={"diversity": {"diversity": 0.9}})) == []
    out = h.check(_tick(2, metrics={"diversity": {"diversity": 0.2}}))
    assert [a["alarm"] for a in out] == ["mode_collapse"] and "0.20" in out[0]["message"] and out[0]["fix"]
    assert h.check(_tick(3, metrics={"diversity": {"diversity": 0.1}})) == []   # said once


def test_d_overfitting_needs_consecutive_ticks_and_a_meaningful_sign():
    h = Health()
    assert h.check(_tick(1, d_real_sign=0.95, d_fake_sign=-0.9)) == []
    assert h.check(_tick(2, d_real_sign=0.5, d_fake_sign=-0.9)) == []     # the run of ticks restarts
    assert h.check(_tick(3, d_real_sign=0.9, d_fake_sign=-0.9)) == []
    assert h.check(_tick(4, d_real_sign=1.0, d_fake_sign=1.0)) == []      # D's bias, not its judgement
    assert h.check(_tick(5, d_real_sign=0.9, d_fake_sign=-0.2)) == []
    assert [a["alarm"] for a in h.check(_tick(6, d_real_sign=0.9, d_fake_sign=-0.5))] == ["d_overfitting"]
    wgan = Health(sign_meaningful=False)
    assert all(wgan.check(_tick(i, d_real_sign=1.0)) == [] for i in range(5))


def test_stalled_watches_the_first_distance_and_survives_a_resume():
    h = Health()
    assert h.check(_tick(1, metrics={"ssl_fd": {"ssl_fd": 10.0}})) == []
    for i in range(2, 2 + health.STALL_TICKS - 1):
        assert h.check(_tick(i, metrics={"ssl_fd": {"ssl_fd": 9.95}})) == []   # better by less than 1%
    again = Health()
    again.load_state_dict(json.loads(json.dumps(h.state_dict())))
    out = again.check(_tick(1 + health.STALL_TICKS, metrics={"ssl_fd": {"ssl_fd": 9.99}}))
    assert [a["alarm"] for a in out] == ["stalled"] and "ssl_fd" in out[0]["message"]
    assert Health().check(_tick(1, metrics={"pr": {"precision": 0.5}})) == []   # higher is better: not watched


def test_an_alarm_is_logged_printed_and_in_the_report(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(health, "OVERFIT", -2.0)   # any D "overfits": the wiring, not the threshold, is tested
    real_check = health.Health.check
    monkeypatch.setattr(health.Health, "check", lambda self, rec: real_check(self, {**rec, "d_fake_sign": -1.0}))
    out = ganforge.train("digits", overrides=TINY + ["train.kimg=0.384"], out=tmp_path / "r", progress=True)
    events = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    alarms = [e for e in events if e.get("event") == "alarm"]
    assert [a["alarm"] for a in alarms] == ["d_overfitting"] and alarms[0]["tick"] == 2
    assert "alarm at" in capsys.readouterr().err
    ticks = [e for e in events if e.get("event") == "tick"]
    assert all("d_real_sign" in t for t in ticks)
    html = write_report(out).read_text()
    assert "Alarm</b>" in html and "D is overfitting" in html
    ganforge.train(resume=out, overrides=["train.kimg=0.512"], progress=False)
    events = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert len([e for e in events if e.get("event") == "alarm"]) == 1   # not repeated after the resume
