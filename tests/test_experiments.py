"""Tests of the SF model, variants, training step and the cached runner
(softmax_stability.experiments.{sf_model, variants, training, runner}).

Few distinct jit shapes on purpose: compilation dominates on CPU."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from softmax_stability import masks
from softmax_stability.experiments import runner as rn
from softmax_stability.experiments import sf_model as sm
from softmax_stability.experiments.training import TrainConfig, Trainer
from softmax_stability.experiments.variants import padded_length, parse_variant

TINY = dict(task="even_pairs", variant="TOPK(3)", epochs=2, n_train=60, n_val=20, length=12, d=8, d_mlp=8,
            blocks=2, stats_k=3, stats_batches=1, stats_batch_size=20)


# ------------------------------------------------------------------------------------------------
# model

def test_model_shapes_and_parameter_count():
    cfg = sm.ModelConfig(n_tokens=5, n_classes=3, seq_len=10, d=8, d_mlp=6, heads=2, blocks=3, dropout=0.0)
    p = sm.init_params(jax.random.PRNGKey(0), cfg)
    out, lg = jax.jit(lambda p, t: sm.apply(p, t, cfg, return_logits=True))(p, jnp.zeros((4, 10), jnp.int32))
    assert out.shape == (4, 3) and out.dtype == jnp.float32
    assert lg.shape == (3, 4, 2, 10, 10)
    d, hd, dm = 8, 16, 6  # heads have width d each (SF), so H*d = 16
    per_block = 3 * (d * hd + hd) + (hd * d + d) + (d * dm + dm) + (dm * d + d)
    assert sm.param_count(p) == 5 * d + 3 * per_block + d * 3 + 3
    with pytest.raises(ValueError, match=r"tokens must have shape \[batch, 10\]"):
        sm.apply(p, jnp.zeros((4, 9), jnp.int32), cfg)


def test_model_config_bad_input():
    with pytest.raises(ValueError, match="relu, gelu, mish"):
        sm.ModelConfig(n_tokens=3, n_classes=2, seq_len=8, activation="tanh")
    with pytest.raises(ValueError, match="larger than the sequence"):
        sm.ModelConfig(n_tokens=3, n_classes=2, seq_len=8, variant="TOPK(9)")
    with pytest.raises(ValueError, match="valid variants"):
        parse_variant("TOPKK(5)")
    with pytest.raises(ValueError, match="larger than the sequence length"):
        padded_length(4, "BAND(5)")


def test_layer_norm_and_positions_match_definitions():
    # the embedding path of a 0-block-free check: positional encoding against the closed form
    pe = sm.positional_encoding(7, 6)
    pos, i = 5, 2
    assert math.isclose(pe[pos, 2 * i], math.sin(pos / 10000 ** (2 * i / 6)), rel_tol=1e-6)
    assert math.isclose(pe[pos, 2 * i + 1], math.cos(pos / 10000 ** (2 * i / 6)), rel_tol=1e-6)


# ------------------------------------------------------------------------------------------------
# variants: the attention pattern the model uses equals softmax_stability.masks

def _attention_probs(variant: str, n: int, seed: int = 0):
    """Probabilities the model's attention uses, read off with one-hot values (out = P)."""
    cfg = sm.ModelConfig(n_tokens=3, n_classes=2, seq_len=n, variant=variant, d=n, dropout=0.0)
    kq, kk = jax.random.split(jax.random.PRNGKey(seed))
    q = jax.random.normal(kq, (2, n, 1, n), jnp.float32)
    k = jax.random.normal(kk, (2, n, 1, n), jnp.float32)
    v = jnp.broadcast_to(jnp.eye(n, dtype=jnp.float32)[None, :, None, :], (2, n, 1, n))
    mask = sm.static_mask(cfg)
    out, logits = jax.jit(lambda q, k, v: sm._attend(q, k, v, cfg, mask, None))(q, k, v)
    return np.asarray(out[:, :, 0, :]), np.asarray(logits[:, 0])


@pytest.mark.parametrize("variant, maker", [
    ("BAND(5)", lambda: masks.band_mask(20, 5)),
    ("BAND(5):1", lambda: masks.band_mask(20, 5, global_tokens=1)),
    ("BLOC(5)", lambda: masks.block_mask(20, 5)),
    ("BLOC(5):3", lambda: masks.block_mask(20, 5, global_tokens=3)),
])
def test_static_variant_masks_equal_library_masks(variant, maker):
    g = parse_variant(variant).global_tokens
    n = 20 + g
    want = maker()
    p, logits = _attention_probs(variant, n)
    assert want.shape == (n, n)
    np.testing.assert_array_equal(p > 0, np.broadcast_to(want, p.shape))
    # and the kept weights are the softmax over the kept logits, computed here in float64
    z = np.where(want, logits.astype(np.float64), -np.inf)
    e = np.exp(z - z.max(-1, keepdims=True))
    np.testing.assert_allclose(p, e / e.sum(-1, keepdims=True), rtol=2e-5, atol=1e-7)


def test_topk_variant_equals_topk_mask_and_renormalised_softmax():
    p, logits = _attention_probs("TOPK(5)", 16, seed=3)
    want = np.asarray(masks.topk_mask(jnp.asarray(logits), 5))
    assert (want.sum(-1) == 5).all()
    np.testing.assert_array_equal(p > 0, want)
    # independent: per row, keep the 5 largest by argsort
    for b in range(p.shape[0]):
        for i in range(16):
            top = np.argsort(logits[b, i])[-5:]
            e = np.exp(logits[b, i, top].astype(np.float64) - logits[b, i, top].max())
            np.testing.assert_allclose(p[b, i, top], e / e.sum(), rtol=2e-5)


def test_full_variant_is_plain_softmax():
    p, logits = _attention_probs("FULL", 8)
    e = np.exp(logits.astype(np.float64) - logits.max(-1, keepdims=True))
    np.testing.assert_allclose(p, e / e.sum(-1, keepdims=True), rtol=2e-5, atol=1e-7)


# ------------------------------------------------------------------------------------------------
# training

@pytest.fixture(scope="module")
def sgd_setup():
    cfg = sm.ModelConfig(n_tokens=3, n_classes=2, seq_len=6, d=8, d_mlp=8, blocks=1, dropout=0.0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, (8, 6)).astype(np.int32)
    y = (x[:, 0] ^ x[:, -1]).astype(np.int32)
    tc = TrainConfig(lr=1.0, lr_decay=0.9, batch_size=8, clip=0.5)  # one full batch per epoch
    return cfg, tc, x, y


def _loss(params, cfg, x, y):
    return sm.loss_and_accuracy(sm.apply(params, x, cfg), y)[0]


_grad = jax.jit(jax.grad(_loss), static_argnums=1)


def test_sgd_steps_match_hand_written_update(sgd_setup):
    cfg, tc, x, y = sgd_setup
    tr = Trainer(cfg, tc, x, y)
    p0 = sm.init_params(jax.random.PRNGKey(1), cfg)
    want = jax.tree_util.tree_map(np.asarray, p0)
    params, state = p0, tr.init_opt(p0)
    for epoch in range(2):
        # optax-free reference: global-norm clip at 0.5, SGD, lr * decay**epoch
        g = _grad(jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), want), cfg, x, y)
        gnorm = math.sqrt(sum(float(np.sum(np.square(np.asarray(l, np.float64))))
                              for l in jax.tree_util.tree_leaves(g)))
        if epoch == 0:
            assert gnorm > 0.5, "test needs an active clip"
        lr = 1.0 * 0.9 ** epoch
        scale = min(1.0, 0.5 / gnorm)
        want = jax.tree_util.tree_map(lambda p, gg: p - lr * scale * np.asarray(gg, np.float64), want, g)
        params, state, _ = tr.epoch(params, state, jax.random.PRNGKey(epoch))
        for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(want)):
            np.testing.assert_allclose(np.asarray(a), b, rtol=1e-4, atol=2e-6)
    assert jax.tree_util.tree_leaves(params)[0].dtype == jnp.float32


def test_training_loss_decreases(sgd_setup):
    cfg, tc, x, _ = sgd_setup
    y = x[:, 0].copy()  # an easy rule, same shapes (no recompilation)
    tr = Trainer(cfg, tc, x, y, x, y)
    params = sm.init_params(jax.random.PRNGKey(2), cfg)
    state = tr.init_opt(params)
    l0, _ = tr.evaluate(params)
    for e in range(25):
        params, state, _ = tr.epoch(params, state, jax.random.PRNGKey(e))
    l1, a1 = tr.evaluate(params)
    assert l1 < 0.6 * l0, (l0, l1)
    assert a1 >= 0.75


# ------------------------------------------------------------------------------------------------
# runner: cache, resume, corruption, bad input

@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    d = tmp_path_factory.mktemp("cache")
    return d, rn.run(rn.RunConfig(**TINY), d, progress=False)


def test_run_records_history_and_stats(finished):
    _, res = finished
    assert not res.cached
    for k in rn.HISTORY_KEYS:
        assert len(res.history[k]) == 2
    assert all(0.0 <= a <= 1.0 for a in res.history["val_acc"])
    st = res.stats
    assert st["k"] == 3 and len(st["lhs_304"]) == 4
    assert all(h <= s + 1e-6 for h, s in zip(st["delta_h"], st["delta_s"]))  # delta_h <= delta_s (O5)


def test_cache_hit(finished):
    d, res = finished
    again = rn.run(rn.RunConfig(**TINY), d, progress=False)
    assert again.cached and again.key == res.key
    assert again.history == res.history and again.stats == res.stats
    # a different configuration is a different entry
    assert rn.cache_key(rn.RunConfig(**{**TINY, "seed": 1})) != res.key
    p = rn.load_params(again)
    assert sm.param_count(p) > 0


def test_resume_after_interrupt_is_identical(finished, tmp_path):
    _, res = finished

    def stop(epoch, rec):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rn.run(rn.RunConfig(**TINY), tmp_path, progress=False, on_epoch=stop)
    entry = tmp_path / res.key
    assert json.loads((entry / "ckpt.json").read_text())["epoch"] == 1
    seen = []
    out = rn.run(rn.RunConfig(**TINY), tmp_path, progress=False, on_epoch=lambda e, r: seen.append(e))
    assert seen == [2]  # only the missing epoch was trained
    for k in rn.HISTORY_KEYS[:4]:
        np.testing.assert_allclose(out.history[k], res.history[k], rtol=1e-6)
    assert not (entry / "ckpt.json").exists()


@pytest.mark.parametrize("damage", ["result", "params", "truncate"])
def test_corrupt_entry_is_detected_and_rerun(finished, tmp_path, damage):
    import shutil

    d, res = finished
    shutil.copytree(res.path, tmp_path / res.key)
    entry = tmp_path / res.key
    if damage == "result":
        doc = json.loads((entry / "result.json").read_text())
        doc["payload"]["history"]["val_acc"][0] = 1.0  # plausible but wrong
        (entry / "result.json").write_text(json.dumps(doc))
    elif damage == "params":
        b = bytearray((entry / "params.npz").read_bytes())
        b[-10] ^= 0xFF
        (entry / "params.npz").write_bytes(bytes(b))
    else:
        (entry / "result.json").write_text((entry / "result.json").read_text()[:50])
    with pytest.warns(rn.CorruptCacheWarning, match="corrupt"):
        out = rn.run(rn.RunConfig(**TINY), tmp_path, progress=False)
    assert not out.cached
    np.testing.assert_allclose(out.history["val_acc"], res.history["val_acc"], rtol=1e-6)
    assert rn.run(rn.RunConfig(**TINY), tmp_path, progress=False).cached


def test_corrupt_checkpoint_is_discarded(finished, tmp_path):
    _, res = finished
    entry = tmp_path / res.key
    entry.mkdir()
    (entry / "ckpt.npz").write_bytes(b"garbage")
    (entry / "ckpt.json").write_text(json.dumps({"epoch": 1, "npz_sha256": "0" * 64,
                                                 "history": {k: [0.0] for k in rn.HISTORY_KEYS}}))
    seen = []
    with pytest.warns(rn.CorruptCacheWarning, match="checkpoint"):
        out = rn.run(rn.RunConfig(**TINY), tmp_path, progress=False, on_epoch=lambda e, r: seen.append(e))
    assert seen == [1, 2]
    np.testing.assert_allclose(out.history["train_loss"], res.history["train_loss"], rtol=1e-6)


def test_runner_bad_input(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(PermissionError, match="cache directory"):
        rn.run(rn.RunConfig(**TINY), blocker / "cache", progress=False)
    with pytest.raises(ValueError, match="larger than the sequence"):
        rn.RunConfig(**{**TINY, "variant": "TOPK(13)"}).resolved()
    with pytest.raises(ValueError, match="larger than the sequence"):
        rn.run_many([rn.RunConfig(**TINY), rn.RunConfig(**{**TINY, "variant": "BAND(40)"})], tmp_path)
    assert not any(tmp_path.glob("*/result.json"))  # nothing ran
    with pytest.raises(ValueError, match="valid tasks"):
        rn.RunConfig(task="evenpairs").resolved()
    with pytest.raises(ValueError, match="valid variants"):
        rn.RunConfig(task="parity", variant="TOP(5)").resolved()
    with pytest.raises(ValueError, match="activation"):
        rn.RunConfig(task="parity", activation="tanh").resolved()
