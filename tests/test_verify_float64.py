"""verify_claim runs in float64 whatever the caller's setting (DL1 once reported VIOLATED, ratio
1.0000019, when called from a float32 session)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax

from softmax_stability.claims import get
from softmax_stability.claims._verify import verify_claim


def test_dl1_passes_from_a_fresh_float32_session():
    """verify_claim runs in float64 whatever the caller's setting: DL1 (to n = 2^40) once reported
    VIOLATED (ratio 1.0000019) when called from a float32 session. A fresh interpreter, x64 off, must
    see it pass and find x64 still off afterwards."""
    code = (
        "import json, jax\n"
        "before = bool(jax.config.jax_enable_x64)\n"
        "from softmax_stability.claims import get\n"
        "from softmax_stability.claims._verify import verify_claim\n"
        "r = verify_claim(get('DL1-needle-limit'))\n"
        "print(json.dumps({'before': before, 'after': bool(jax.config.jax_enable_x64),\n"
        "                  'verdict': r.verdict, 'max_ratio': r.max_ratio, 'violations': r.violations}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=1800)  # hang guard
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["before"] is False and res["after"] is False, res
    assert res["verdict"] == "pass" and res["violations"] == 0, res
    assert res["max_ratio"] <= 1 + 1e-10, res


def test_dl1_passes_with_x64_switched_off_in_process():
    """The same in this process: x64 off around the call, restored by verify_claim to off."""
    jax.config.update("jax_enable_x64", False)
    try:
        r = verify_claim(get("DL1-needle-limit"))
        assert jax.config.jax_enable_x64 is False
    finally:
        jax.config.update("jax_enable_x64", True)
    assert r.verdict == "pass" and r.violations == 0, (r.verdict, r.max_ratio, r.worst_instance)
