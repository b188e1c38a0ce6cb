"""Many seeds in one program (``experiments.multiseed``, ``runner.run_seeds``): each seed equals its
single run, per-seed results live in the cache as single-run entries, an interrupted batch resumes
to the uninterrupted result, and the seeds split across devices give the one-device result."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from softmax_stability.experiments import runner
from softmax_stability.experiments.multiseed import MultiSeedTrainer, stack_trees, unstack_tree
from softmax_stability.experiments.sf_model import ModelConfig, init_params
from softmax_stability.experiments.training import TrainConfig, Trainer

SEEDS = (0, 3, 7)


def _data(seed, n=30, length=12):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, (n, length))
    return x, x[:, 0] ^ x[:, 5]


def _p64(seed, cfg):
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), init_params(jax.random.PRNGKey(seed), cfg))


def test_vmapped_seeds_equal_single_runs_float64():
    # RND(3): attention masks and dropout both drawn from the per-seed keys (TOPK: the runner test)
    variant = "RND(3)"
    # 30 samples in batches of 7: 5 steps per epoch, the last one partial; dropout 0.2 so the
    # per-seed dropout keys matter; each seed its own data, initialisation and epoch keys
    # one block: the per-seed keys (RND masks, dropout) and the vmap over seeds are the same at any
    # depth; a second block only doubled what the single and the vmapped programs compile
    cfg = ModelConfig(n_tokens=3, n_classes=2, seq_len=12, d=8, d_mlp=8, blocks=1, variant=variant, dropout=0.2)
    tc = TrainConfig(batch_size=7, lr=0.5)
    data = [_data(s) for s in SEEDS]
    single = []
    for s, (x, y) in zip(SEEDS, data):
        tr = Trainer(cfg, tc, x, y)
        p = _p64(s, cfg)
        st = tr.init_opt(p)
        for e in range(2):
            p, st, m = tr.epoch(p, st, jax.random.fold_in(jax.random.PRNGKey(s), e))
        single.append((p, list(m)))
    xs, ys = np.stack([d[0] for d in data]), np.stack([d[1] for d in data])
    mt = MultiSeedTrainer(cfg, tc, xs, ys)
    p0 = stack_trees([_p64(s, cfg) for s in SEEDS])
    p, st = p0, mt.init_opt(p0)
    for e in range(2):
        keys = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(s), e) for s in SEEDS])
        p, st, (tl, ta) = mt.epoch(p, st, keys)
    assert tl.shape == (len(SEEDS),)
    for j, ((ps, ms), pm) in enumerate(zip(single, unstack_tree(p))):
        moved = max(float(jnp.max(jnp.abs(a - b))) for a, b in
                    zip(jax.tree_util.tree_leaves(ps), jax.tree_util.tree_leaves(_p64(SEEDS[j], cfg))))
        assert moved > 1e-3  # training moved the parameters, so agreement means something
        # float64: the vmapped program computes the same operations per seed; only the order of the
        # sums inside a batched matrix product may differ (a few ulp, 1e-16 relative), and 10 SGD
        # steps with clipping amplify that by far less than 1e6, hence 1e-10
        for a, b in zip(jax.tree_util.tree_leaves(ps), jax.tree_util.tree_leaves(pm)):
            np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-10, atol=1e-12)
        # losses and accuracies are float32 (loss_and_accuracy): equal to float32 rounding
        # (evaluation: compared through the runner in test_run_seeds_cache_and_resume)
        np.testing.assert_allclose([tl[j], ta[j]], ms, rtol=1e-6, atol=1e-7)
    # seeds really differ (different data, keys and initialisation)
    assert not np.allclose(tl[0], tl[1])


DEVICES_SCRIPT = textwrap.dedent("""
    import json
    import jax
    jax.config.update("jax_enable_x64", True)
    import numpy as np, jax.numpy as jnp
    from softmax_stability.experiments.sf_model import ModelConfig, init_params
    from softmax_stability.experiments.training import TrainConfig
    from softmax_stability.experiments.multiseed import MultiSeedTrainer, stack_trees
    cfg = ModelConfig(n_tokens=3, n_classes=2, seq_len=10, d=8, d_mlp=8, blocks=1, dropout=0.2)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, (3, 20, 10)); y = x[:, :, 0] ^ x[:, :, 4]
    keys = jnp.stack([jax.random.PRNGKey(s) for s in range(3)])
    p0 = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64),
                                stack_trees([init_params(k, cfg) for k in keys]))
    out = {"devices": len(jax.devices())}
    for nd in (1, 2):   # 3 seeds on 2 devices: padded with a copy of the last seed
        tr = MultiSeedTrainer(cfg, TrainConfig(batch_size=6, lr=0.5), x, y, x, y, devices=jax.devices()[:nd])
        p = jax.tree_util.tree_map(jnp.array, p0); s = tr.init_opt(p)
        p, s, (l, a) = tr.epoch(p, s, keys)
        out[nd] = {"params": [np.asarray(v).tolist() for v in jax.tree_util.tree_leaves(p)],
                   "loss": l.tolist(), "eval": [v.tolist() for v in tr.evaluate(p, "val", keys)] if nd == 2 else None,
                   "shards": len(jax.tree_util.tree_leaves(p)[0].sharding.device_set)}
    print(json.dumps(out))
""")


def test_seeds_split_across_devices_equal_one_device():
    flags = os.environ.get("XLA_FLAGS", "")  # keep conftest's fast-compile flag
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=f"{flags} --xla_force_host_platform_device_count=2")
    res = subprocess.run([sys.executable, "-c", DEVICES_SCRIPT], env=env, capture_output=True, text=True,
                         timeout=1800)  # a hang guard, not a speed limit
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["devices"] == 2 and out["2"]["shards"] == 2
    one, two = out["1"], out["2"]
    assert len(two["loss"]) == 3  # the padding seed is dropped
    # each device runs the same per-seed arithmetic on its share of the seeds
    for a, b in zip(one["params"], two["params"]):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=1e-6)
    assert all(0.0 <= a <= 1.0 for a in two["eval"][1])  # the sharded evaluation runs, per seed


TINY = dict(task="even_pairs", epochs=2, n_train=30, n_val=10, length=10, d=8, d_mlp=8, blocks=1,
            stats_k=3, stats_batches=1, stats_batch_size=10, batch_size=8, variant="TOPK(3)")


def _hist(res):
    return [{k: v for k, v in r.history.items() if k != "epoch_seconds"} for r in res]


def test_run_seeds_cache_and_resume(tmp_path):
    cfgs = [runner.RunConfig(seed=s, **TINY) for s in (0, 1)]
    ref = runner.run_many(cfgs, tmp_path / "a", progress=False, seed_batch=True, workers=1)
    assert [r.cached for r in ref] == [False, False]
    # per-seed results are ordinary single-run entries: run() and load_params() find them
    again = runner.run(cfgs[1], tmp_path / "a", progress=False)
    assert again.cached and again.history == ref[1].history and again.stats == ref[1].stats
    assert runner.load_params(again)["head"]["w"].shape == (8, 2)
    # ... and hold what run() computes for that seed (same data, initialisation and keys; TOPK(3)
    # vmapped), to float32 rounding of the batched vs the single matrix products
    single = runner.run(cfgs[0], tmp_path / "single", progress=False)
    for k, v in _hist(ref)[0].items():
        np.testing.assert_allclose(v, single.history[k], rtol=2e-5, atol=1e-6, err_msg=k)

    # interrupted after epoch 1: every seed has a checkpoint at epoch 1 and no result
    class Stop(Exception):
        pass

    seen = []

    def stop(epoch, records):
        seen.append((epoch, [r["seed"] for r in records]))
        if epoch == 1:
            raise Stop

    with pytest.raises(Stop):
        runner.run_seeds(cfgs, tmp_path / "b", progress=False, on_epoch=stop)
    assert seen == [(1, [0, 1])]
    for c in cfgs:
        entry = tmp_path / "b" / runner.cache_key(c)
        assert json.loads((entry / "ckpt.json").read_text())["epoch"] == 1
        assert not (entry / "result.json").exists()
    resumed = runner.run_seeds(cfgs, tmp_path / "b", progress=False, on_epoch=lambda e, r: seen.append((e, None)))
    assert [e for e, _ in seen[1:]] == [2]  # resumed at epoch 2, not from scratch
    # the same program from the same checkpointed state: bit-identical
    assert _hist(resumed) == _hist(ref)
    assert [r.stats for r in resumed] == [r.stats for r in ref]
    for a, b in zip(ref, resumed):
        for u, v in zip(jax.tree_util.tree_leaves(runner.load_params(a)),
                        jax.tree_util.tree_leaves(runner.load_params(b))):
            np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    # a finished seed is loaded, not retrained; a new seed alone is trained
    mixed = runner.run_seeds([cfgs[0]] + [runner.RunConfig(seed=s, **TINY) for s in (2, 3)], tmp_path / "b",
                             progress=False)
    assert [r.cached for r in mixed] == [True, False, False]


def test_bad_input():
    cfg = ModelConfig(n_tokens=3, n_classes=2, seq_len=6, d=8, d_mlp=8, blocks=1)
    x = np.zeros((2, 10, 6), np.int32)
    y = np.zeros((2, 10), np.int32)
    with pytest.raises(ValueError, match="x_train"):
        MultiSeedTrainer(cfg, TrainConfig(), x[0], y)
    with pytest.raises(ValueError, match="x_train"):
        MultiSeedTrainer(cfg, TrainConfig(), np.zeros((2, 10, 5)), y)
    with pytest.raises(ValueError, match="y_train"):
        MultiSeedTrainer(cfg, TrainConfig(), x, y[:1])
    with pytest.raises(ValueError, match="x_val"):
        MultiSeedTrainer(cfg, TrainConfig(), x, y, x[:1], y[:1])
    with pytest.raises(ValueError, match="eval_batch"):
        MultiSeedTrainer(cfg, TrainConfig(), x, y, eval_batch=0)
    with pytest.raises(ValueError, match="devices"):
        MultiSeedTrainer(cfg, TrainConfig(), x, y, devices=[])
    tr = MultiSeedTrainer(cfg, TrainConfig(), x, y)
    with pytest.raises(ValueError, match="params"):
        tr.init_opt(init_params(jax.random.PRNGKey(0), cfg))  # not stacked over seeds
    with pytest.raises(ValueError, match="split"):
        tr.evaluate(stack_trees([init_params(jax.random.PRNGKey(0), cfg)] * 2), "val")
    with pytest.raises(ValueError, match="non-empty"):
        stack_trees([])
    base = runner.RunConfig(seed=0, **TINY)
    with pytest.raises(ValueError, match="differ only in seed"):
        runner.run_seeds([base, runner.RunConfig(seed=1, **{**TINY, "variant": "FULL"})], "/nonexistent")
    with pytest.raises(ValueError, match="distinct seeds"):
        runner.run_seeds([base, base], "/nonexistent")
    with pytest.raises(ValueError, match="non-empty"):
        runner.run_seeds([], "/nonexistent")


# ------------------------------------------------------------------------------------------------
# the medium profile (settings only: running it takes most of an hour)


def test_medium_profile_settings():
    from softmax_stability.experiments import tasks as tasks_mod

    s = runner.profile_settings("medium")
    assert set(s["tasks"]) == set(tasks_mod.TASKS) and len(s["tasks"]) == 8
    assert s["variants"] == ("FULL", "BAND(5)", "BAND(5):1", "BLOC(5)", "BLOC(5):1", "TOPK(5)", "RND(5)")
    assert s["seeds"] == (0, 1, 2, 3, 4) and s["seed_batch"] is True
    assert runner.profile_settings("quick")["seed_batch"] is False
    cfgs = runner.profile_configs("medium")
    assert len(cfgs) == 8 * 7 * 5
    r = runner.profile_config("medium", "listops", "TOPK(5)", 0).resolved()
    assert (r["length"], r["min_length"], r["epochs"]) == (40, 20, runner.MEDIUM_EPOCHS["listops"])
    dev = " ".join(runner.profile_deviations("medium"))
    for word in ("5 seeds", "min_length = 20 (authors: 500)", "length = parity 20,", "listops 40 (authors: parity 40,"):
        assert word in dev, word
    with pytest.raises(ValueError, match="smoke, quick, medium, full"):
        runner.profile_settings("large")


def test_min_length_and_cache_keys():
    # min_length is new: keys of runs that do not set it are those of before (values from the
    # code before the field existed), so existing caches stay valid
    assert runner.cache_key(runner.profile_config("quick", "even_pairs", "FULL", 0)) == "6c95afee74136a49d36f1801"
    assert runner.cache_key(runner.RunConfig(task="listops")) == "cfe4f362169abfa626c7f066"
    assert runner.cache_key(runner.RunConfig(task="listops", length=40, min_length=20)) != runner.cache_key(
        runner.RunConfig(task="listops", length=40, min_length=21))
    with pytest.raises(ValueError, match="min_length applies to listops only"):
        runner.RunConfig(task="parity", min_length=5).resolved()
    with pytest.raises(ValueError, match="min_length \\+ 1 < length"):
        runner.RunConfig(task="listops", length=40, min_length=39).resolved()
    with pytest.raises(ValueError, match="needs min_length"):
        runner.RunConfig(task="listops", length=40).resolved()
    with pytest.raises(ValueError, match="min_length"):
        runner.RunConfig(task="listops", length=40, min_length=-1).resolved()


def test_convergence_outcome():
    inf = float("inf")
    s = runner.convergence_outcome("t", {"FULL": 10.0, "TOPK(5)": 5.0, "BAND(5)": 20.0, "BLOC(5)": inf}, 30)
    assert s == ("t: TOPK(5) converges faster than FULL (speed-up 2.00x); BAND/BLOC no faster than FULL (as SF): "
                 "BAND(5) 0.50x, BLOC(5) < 0.33x.")
    s = runner.convergence_outcome("t", {"FULL": 5.0, "TOPK(5)": inf, "BLOC(5):1": 4.0}, 30)
    assert "TOPK(5) does NOT converge faster than FULL (speed-up < 0.17x)" in s
    assert "BAND/BLOC faster than FULL for BLOC(5):1 1.25x (SF: no faster; NOT reproduced)" in s
    assert "undecided" in runner.convergence_outcome("t", {"FULL": inf, "TOPK(5)": inf}, 30)
    with pytest.raises(ValueError, match="reference"):
        runner.convergence_outcome("t", {"TOPK(5)": 3.0}, 30)


def test_medium_is_a_figure_and_cli_profile():
    from figures._common import PROFILES, FigureContext
    from figures._cli import main as pipeline_main

    assert "medium" in PROFILES and tuple(runner.PROFILES) == tuple(PROFILES)
    ctx = FigureContext("x", "/tmp", profile="medium")
    assert ctx.quick and ctx.size_profile == "quick"  # sizes other than the SF runs: quick's
    for argv in (["run", "--profile", "medium", "--help"], ["--profile", "medium", "--help"]):
        with pytest.raises(SystemExit) as exit_:  # an unknown profile would exit 2 before --help
            pipeline_main(argv)
        assert exit_.value.code == 0
