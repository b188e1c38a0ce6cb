"""The training benchmark runs end to end (tiny size) and prints what its docstring promises:
a table with the one-device and the split-batch column, and the median seconds as the last line."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_bench_training_smoke(tmp_path):
    out = tmp_path / "train.md"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_training.py"), "--n-train", "60",
                          "--epochs", "1", "--devices", "2", "--floor-copies", "1",
                          "--out", str(out)],
                         env=env, capture_output=True, text=True, timeout=1800, cwd=ROOT)  # hang guard
    assert res.returncode == 0, res.stderr[-3000:]
    last = res.stdout.strip().splitlines()[-1]
    assert float(last) > 0
    md = out.read_text()
    assert "| JAX 1 device s/epoch | JAX 2 devices s/epoch |" in md
    row = next(ln for ln in md.splitlines() if ln.startswith("| FULL |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "3"  # 60 samples, batch 25: 3 steps
    assert float(cells[2]) > 0 and float(cells[3]) > 0
    # last line: the split-batch median; the table rounds to 3 decimals (half a unit, plus float slack)
    assert abs(float(last) - float(cells[3])) <= 5e-4 + 1e-9
    assert cells[5] == "—"  # no torch baseline requested
    # the matmul floor ran (one copy per product: the code path, not a measurement)
    assert "Matmul floor (`matmul_floor`)" in md


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_training", ROOT / "benchmarks" / "bench_training.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("args,word", [(["--epochs", "0"], "--epochs"), (["--devices", "-1"], "--devices"),
                                       (["--variant", "WARP(3)"], "WARP"), (["--seeds", "4,0"], "--seeds"),
                                       (["--floor-copies", "0"], "--floor-copies")])
def test_bench_training_bad_arguments(args, word, capsys, monkeypatch):
    # in process: the arguments are checked before JAX starts, so no child process (and its JAX
    # start-up) is needed to see the script refuse them; a call to jax.devices would fail the test
    import jax

    def no_backend(*a, **k):
        raise AssertionError("bad arguments reached JAX")

    monkeypatch.setattr(jax, "devices", no_backend)
    with pytest.raises((SystemExit, ValueError)) as exc:
        _bench_module().main(args)
    if exc.type is SystemExit:
        assert exc.value.code != 0
        assert word in capsys.readouterr().err
    else:
        assert word in str(exc.value)
