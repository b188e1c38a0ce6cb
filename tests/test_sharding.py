"""The verifier's sweep sharded over 4 forced host devices equals the single-device result."""

import functools
import json
import os
import subprocess
import sys
import textwrap

import pytest


def _xla_flags(n_devices: int) -> str:
    """The suite's XLA flags (conftest: faster compiles) with ``n_devices`` host devices."""
    kept = [f for f in os.environ.get("XLA_FLAGS", "").split() if "host_platform_device_count" not in f]
    return " ".join(kept + [f"--xla_force_host_platform_device_count={n_devices}"])


SCRIPT = textwrap.dedent("""
    import json, sys
    import jax
    jax.config.update("jax_enable_x64", True)
    from softmax_stability.claims import get
    from softmax_stability.claims import _verify
    from softmax_stability.claims._verify import verify_claim, shard_batch
    import jax.numpy as jnp
    out = {"devices": len(jax.devices())}
    # unsharded first (no mesh: the path a one-device process takes, on the first device), then
    # sharded over every device; one child process (one JAX start-up) for both
    mesh = _verify._mesh
    for name, mesh_fn in (("unsharded", lambda: None), ("sharded", mesh)):
        _verify._mesh = mesh_fn
        b = shard_batch({"z": jnp.zeros((8, 3))})
        res = out[name] = {"shards": len(b["z"].sharding.device_set), "results": {}}
        for cid in sys.argv[1:]:
            # the random instances only: the searches (adversary, regimes) run unsharded, and their
            # instances are evaluated by the same sharded sweep as these
            r = verify_claim(get(cid), seed=3, adversary=False)
            res["results"][cid] = {"max_ratio": r.max_ratio, "median_ratio": r.median_ratio,
                                   "instances": r.instances, "verdict": r.verdict}
    print(json.dumps(out))
""")

CLAIMS = ["J5b-softmax-one-norm-half", "D1-dispersion-entry-bounds"]


@functools.lru_cache(maxsize=None)
def _run(n_devices: int) -> dict:
    """SCRIPT's results, unsharded and sharded, on ``n_devices`` forced host devices (cached: two
    tests compare with them)."""
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=_xla_flags(n_devices))
    res = subprocess.run([sys.executable, "-c", SCRIPT, *CLAIMS], env=env, capture_output=True,
                         text=True, timeout=1800)  # a hang guard, not a speed limit
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_sharded_sweep_equals_single_device():
    out = _run(4)
    one, four = out["unsharded"], out["sharded"]
    assert out["devices"] == 4
    assert one["shards"] == 1  # the reference really ran on one device
    assert four["shards"] == 4  # the batch really was split over the four devices
    for cid in CLAIMS:
        a, b = one["results"][cid], four["results"][cid]
        assert a["instances"] == b["instances"] and a["verdict"] == b["verdict"] == "pass"
        # same per-instance arithmetic on every device: equal to rounding
        assert b["max_ratio"] == pytest.approx(a["max_ratio"], rel=1e-12, abs=0)
        assert b["median_ratio"] == pytest.approx(a["median_ratio"], rel=1e-12, abs=0)


GRID_SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    from softmax_stability.experiments import runner as rn
    tiny = dict(task="even_pairs", epochs=2, n_train=60, n_val=20, length=12, d=8, d_mlp=8, blocks=1,
                stats_k=3, stats_batches=1, stats_batch_size=20)
    cfgs = [rn.RunConfig(variant=v, seed=s, **tiny) for v in ("FULL", "TOPK(3)") for s in (0, 1)]
    placed, orig = set(), rn.run
    def spy(cfg, *a, **kw):  # the device each run's arrays land on
        placed.add(str(next(iter(jax.numpy.zeros(()).devices()))))
        return orig(cfg, *a, **kw)
    rn.run = spy
    out = {"devices": len(jax.devices())}
    # one by one on the first device, then concurrently over all of them (separate caches)
    for name, kw in (("one", dict(workers=1, devices=jax.devices()[:1])), ("all", dict(workers=len(jax.devices())))):
        placed.clear()
        res = rn.run_many(cfgs, sys.argv[1] + "/" + name, progress=False, **kw)
        out[name] = {"history": [r.history for r in res], "stats": [r.stats for r in res],
                     "keys": [r.key for r in res], "placed": sorted(placed)}
    print(json.dumps(out))
""")


def test_experiment_grid_over_four_devices_equals_one_by_one(tmp_path):
    # both grids in one child with 4 host devices (one JAX start-up, not two): the sequential grid
    # pinned to the first device, the concurrent one spread over all four
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=_xla_flags(4))
    res = subprocess.run([sys.executable, "-c", GRID_SCRIPT, str(tmp_path)], env=env,
                         capture_output=True, text=True, timeout=1800)  # a hang guard, not a speed limit
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    one, four = out["one"], out["all"]
    assert out["devices"] == 4
    assert one["keys"] == four["keys"]
    assert len(one["placed"]) == 1 and len(four["placed"]) == 4  # the grid really was spread out
    # each run has its own keys and the same XLA:CPU arithmetic on every (host) device: the
    # concurrent, spread-out grid reproduces the sequential one exactly, not just to rounding
    assert four["history"] == [
        {k: (v if k != "epoch_seconds" else four["history"][i][k]) for k, v in h.items()}
        for i, h in enumerate(one["history"])]
    assert four["stats"] == one["stats"]


MULTIHOST_SCRIPT = textwrap.dedent("""
    import json, sys
    import jax
    pid, port = int(sys.argv[1]), sys.argv[2]
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=2, process_id=pid)
    from softmax_stability.claims import get
    from softmax_stability.claims._verify import verify_claim, shard_batch
    import jax.numpy as jnp
    b = shard_batch({"z": jnp.zeros((8, 3))})
    out = {"devices": len(jax.devices()), "local": len(jax.local_devices()),
           "shards": len(b["z"].sharding.device_set), "results": {}}
    for cid in sys.argv[3:]:
        r = verify_claim(get(cid), seed=3, adversary=False)  # as SCRIPT
        out["results"][cid] = {"max_ratio": r.max_ratio, "median_ratio": r.median_ratio,
                               "instances": r.instances, "verdict": r.verdict}
    print(json.dumps(out))
""")


def test_sweep_over_two_processes_equals_single_process():
    # two processes joined by jax.distributed (CPU collectives over gloo) stand in for two hosts
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = str(s.getsockname()[1])
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=_xla_flags(1))
    procs = [subprocess.Popen([sys.executable, "-c", MULTIHOST_SCRIPT, str(pid), port, *CLAIMS], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for pid in (0, 1)]
    outs = []
    for p in procs:
        try:
            stdout, stderr = p.communicate(timeout=1800)  # a hang guard, not a speed limit
        finally:
            p.kill()
        assert p.returncode == 0, stderr[-2000:]
        outs.append(json.loads(stdout.strip().splitlines()[-1]))
    one = _run(4)["unsharded"]  # the single-device sweep of test_sharded_sweep_equals_single_device
    for o in outs:
        assert o["devices"] == 2 and o["local"] == 1 and o["shards"] == 2  # one batch over both hosts
        for cid in CLAIMS:
            a, b = one["results"][cid], o["results"][cid]
            assert a["instances"] == b["instances"] and a["verdict"] == b["verdict"] == "pass"
            assert b["max_ratio"] == pytest.approx(a["max_ratio"], rel=1e-12, abs=0)
            assert b["median_ratio"] == pytest.approx(a["median_ratio"], rel=1e-12, abs=0)
