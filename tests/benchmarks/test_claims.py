"""benchmarks/report/claims.py: a grid point is claimed before it runs; dead or silent holders are taken over;
two runners on one --out train every point exactly once."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from exprbench.benchmarks.report.claims import CLAIM_INFO, CLAIM_LOCK, Claim, holder
from exprbench.core.errors import UserError

from .conftest import POINTS, assert_trained_once, attempts, start_bench

HOLD = """
import sys, time
from exprbench.benchmarks.report.claims import Claim
c = Claim(sys.argv[1], runner="test", lease_s=float(sys.argv[2]))
assert c.acquire()
print(c.owner, flush=True)
time.sleep(120)
"""


def _hold(run_dir, lease_s: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir), str(lease_s)], stdout=subprocess.PIPE, text=True)
    owner = proc.stdout.readline().strip()
    assert owner, "the holder process did not take the claim"
    return proc, owner


def test_claim_is_exclusive_and_released(tmp_path):
    run = tmp_path / "runs" / "gan-default-s0"
    a, b = Claim(run, lease_s=30), Claim(run, lease_s=30)
    assert a.acquire() and not b.acquire()
    h = holder(run, 30)
    assert h["owner"] == a.owner and h["alive"] and h["runner"] == "local" and isinstance(h["pid"], int)
    a.release()
    assert holder(run, 30) is None and not (run / CLAIM_LOCK).exists() and not (run / CLAIM_INFO).exists()
    assert b.acquire() and not b.took_over
    b.release()


def test_killed_holder_is_taken_over_at_once(tmp_path):
    run = tmp_path / "run"
    proc, owner = _hold(run, 30)
    try:
        assert not Claim(run, lease_s=30).acquire()
        assert holder(run, 30)["owner"] == owner
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    c = Claim(run, lease_s=30)
    assert not holder(run, 30)["alive"]  # its process is gone, though the heartbeat is recent
    assert c.acquire(wait=0) and c.took_over  # no waiting for the lease: the holder's process exited
    c.release()


def test_silent_holder_is_taken_over_after_the_lease(tmp_path):
    """A holder that stops heartbeating (hung, or on a lost node) keeps its claim until the lease runs out."""
    run = tmp_path / "run"
    proc, _ = _hold(run, 1.5)
    try:
        assert not Claim(run, lease_s=1.5).acquire(wait=2.5)  # alive and heartbeating: never taken
        proc.send_signal(signal.SIGSTOP)
        c = Claim(run, lease_s=1.5)
        t0 = time.monotonic()
        assert c.acquire(wait=6) and c.took_over
        assert time.monotonic() - t0 >= 1.4
        c.release()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_runners_must_agree_on_the_lease(tmp_path):
    run = tmp_path / "run"
    a = Claim(run, lease_s=30)
    assert a.acquire()
    with pytest.raises(UserError, match="EXPRBENCH_CLAIM_LEASE_S"):
        Claim(run, lease_s=10).acquire(wait=0.5)
    a.release()


@pytest.mark.slow
def test_two_local_runners_on_one_out(tiny_world, monkeypatch):
    """A `bench` process and a second local runner started on its --out while it trains: no false
    checksum error, no duplicated log record, every point trained once; both end with every record."""
    from exprbench.benchmarks.runner import run_suite
    from exprbench.benchmarks.suite import load_suite

    out = tiny_world["root"] / "two-local"
    proc = start_bench(tiny_world, out)
    deadline = time.time() + 120
    while not (out / "runs" / POINTS[0] / "claim.json").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)  # the first runner holds its first point
    monkeypatch.setenv("EXPRBENCH_CACHE", str(tiny_world["cache"]))
    recs = run_suite(load_suite(tiny_world["suite"]), out, data_path=str(tiny_world["data"]), progress=False,
                     poll_s=0.2)
    so, se = proc.communicate(timeout=300)
    assert proc.returncode == 0, se[-2000:]
    assert "2 done, 0 failed" in so and [r["status"] for r in recs] == ["done", "done"]
    assert "sha256" not in se and "corrupt" not in se
    assert_trained_once(out, tiny_world["local"])
    assert attempts(out, POINTS[0])[0]["pid"] == proc.pid  # the first runner kept its point
