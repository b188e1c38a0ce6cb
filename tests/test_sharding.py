"""The verifier's sweep sharded over 4 forced host devices equals the single-device result."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import json, sys
    import jax
    jax.config.update("jax_enable_x64", True)
    from softmax_stability.claims import get
    from softmax_stability.claims._verify import verify_claim, shard_batch
    import jax.numpy as jnp
    b = shard_batch({"z": jnp.zeros((8, 3))})
    n_shards = len(b["z"].sharding.device_set)
    out = {"devices": len(jax.devices()), "shards": n_shards, "results": {}}
    for cid in sys.argv[1:]:
        r = verify_claim(get(cid), seed=3)
        out["results"][cid] = {"max_ratio": r.max_ratio, "median_ratio": r.median_ratio,
                               "instances": r.instances, "verdict": r.verdict}
    print(json.dumps(out))
""")

CLAIMS = ["J5b-softmax-one-norm-half", "D1-dispersion-entry-bounds"]


def _run(n_devices: int) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={n_devices}")
    res = subprocess.run([sys.executable, "-c", SCRIPT, *CLAIMS], env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_sharded_sweep_equals_single_device():
    one = _run(1)
    four = _run(4)
    assert one["devices"] == 1 and four["devices"] == 4
    assert four["shards"] == 4  # the batch really was split over the four devices
    for cid in CLAIMS:
        a, b = one["results"][cid], four["results"][cid]
        assert a["instances"] == b["instances"] and a["verdict"] == b["verdict"] == "pass"
        # same per-instance arithmetic on every device: equal to rounding
        assert b["max_ratio"] == pytest.approx(a["max_ratio"], rel=1e-12, abs=0)
        assert b["median_ratio"] == pytest.approx(a["median_ratio"], rel=1e-12, abs=0)
