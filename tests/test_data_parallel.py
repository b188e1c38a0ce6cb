"""Training with every batch split across devices (``Trainer(devices=...)``) gives the parameters
of one-device training: same update, same dropout and RND masks, only the summation order of the
gradient differs. Runs in a child process with 3 host CPU devices."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from softmax_stability.experiments.sf_model import ModelConfig
from softmax_stability.experiments.training import TrainConfig, Trainer


def _xla_flags(n_devices: int) -> str:
    """The suite's XLA flags (conftest: faster compiles) with ``n_devices`` host devices."""
    kept = [f for f in os.environ.get("XLA_FLAGS", "").split() if "host_platform_device_count" not in f]
    return " ".join(kept + [f"--xla_force_host_platform_device_count={n_devices}"])


SCRIPT = textwrap.dedent("""
    import json, sys
    import jax
    jax.config.update("jax_enable_x64", True)
    import numpy as np, jax.numpy as jnp
    from softmax_stability.experiments.sf_model import ModelConfig, init_params
    from softmax_stability.experiments.training import Trainer, TrainConfig
    n_dev = len(jax.devices())
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, (57, 12)); y = x[:, 0] ^ x[:, 5]   # 57 = 8 batches of 7 + 1 (partial)
    out = {"devices": n_dev, "results": {}}
    for var in sys.argv[1:]:
        # one block: the split (padding, weight-0 rows, the psum of gradients, per-sample dropout and
        # RND keys) is the Trainer's, the same for any depth; a second block only doubled the compiles
        cfg = ModelConfig(n_tokens=3, n_classes=2, seq_len=12, d=8, d_mlp=8, blocks=1, variant=var, dropout=0.2)
        p0 = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), init_params(jax.random.PRNGKey(0), cfg))
        res = {}
        for nd in (1, n_dev):
            tr = Trainer(cfg, TrainConfig(batch_size=7, lr=0.5), x, y, devices=jax.devices()[:nd])
            p = jax.tree_util.tree_map(jnp.array, p0); s = tr.init_opt(p)
            for e in range(2):
                p, s, m = tr.epoch(p, s, jax.random.PRNGKey(e))
            res[nd] = (jax.tree_util.tree_map(np.asarray, p), list(m) + list(tr.evaluate(p, "train")))
        leaves = zip(jax.tree_util.tree_leaves(res[1][0]), jax.tree_util.tree_leaves(res[n_dev][0]))
        moved = jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda a, b: np.max(np.abs(a - b)), p0, res[1][0]))
        out["results"][var] = {"max_diff": max(float(np.max(np.abs(a - b))) for a, b in leaves),
                               "moved": max(float(v) for v in moved),
                               "metrics_1": list(res[1][1]), "metrics_n": list(res[n_dev][1])}
    # one explicit device that is not the default one: the epoch runs there
    tr = Trainer(cfg, TrainConfig(batch_size=7, lr=0.5), x, y, devices=[jax.devices()[-1]])
    p = init_params(jax.random.PRNGKey(0), cfg); s = tr.init_opt(p)
    p, s, m = tr.epoch(p, s, jax.random.PRNGKey(0))
    out["single_device"] = [str(d) for d in jax.tree_util.tree_leaves(p)[0].devices()]
    out["single_eval"] = list(tr.evaluate(p, "train"))
    print(json.dumps(out))
""")

VARIANTS = ["FULL", "TOPK(3)", "RND(3)"]


def test_split_batch_training_equals_one_device():
    # 3 devices: batches of 7 are padded to 9, and the last batch (1 sample) leaves two devices
    # with weight-0 rows only
    n_devices = 3
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=_xla_flags(n_devices))
    res = subprocess.run([sys.executable, "-c", SCRIPT, *VARIANTS], env=env, capture_output=True, text=True,
                         timeout=1800)  # a hang guard, not a speed limit
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["devices"] == n_devices
    assert out["single_device"] == ["TFRT_CPU_2"] or out["single_device"][0].endswith("2"), out["single_device"]
    assert 0.0 <= out["single_eval"][1] <= 1.0
    for var in VARIANTS:
        r = out["results"][var]
        assert r["moved"] > 1e-3, var  # training changed the parameters, so the comparison means something
        # float64, 2 epochs of 9 steps: only the order of the gradient's sums differs
        assert r["max_diff"] < 1e-12, (var, r)
        # running metrics and the evaluation after training are float32 (loss_and_accuracy)
        np.testing.assert_allclose(r["metrics_n"], r["metrics_1"], rtol=1e-5, err_msg=var)


def test_devices_argument_checked():
    cfg = ModelConfig(n_tokens=3, n_classes=2, seq_len=6, d=8, d_mlp=8, blocks=1)
    x = np.zeros((10, 6), np.int32)
    y = np.zeros((10,), np.int32)
    with pytest.raises(ValueError, match="devices"):
        Trainer(cfg, TrainConfig(), x, y, devices=[])
    d = jax.devices()[0]
    with pytest.raises(ValueError, match="devices"):
        Trainer(cfg, TrainConfig(), x, y, devices=[d, d])
    assert Trainer(cfg, TrainConfig(), x, y).devices is None  # the default device (run_many pins it)
    assert Trainer(cfg, TrainConfig(), x, y, devices=[d]).devices == [d]
