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
# an independent NumPy forward pass (docs/notes/semantic_focus.md §1.1), float64


def _np_mask(variant: str, n: int) -> np.ndarray:
    """Attend pattern written from the authors' description (not from softmax_stability.masks)."""
    v = parse_variant(variant)
    g = v.global_tokens
    core = n - g
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    if v.kind == "BAND":  # k consecutive keys, l = (k-1)//2 to the left, shifted inside at the edges
        start = np.clip(i - (v.k - 1) // 2, 0, core - v.k)
        m = (j >= start) & (j < start + v.k)
    elif v.kind == "BLOC":
        m = i // v.k == j // v.k
    else:
        return np.ones((n, n), bool)
    glob = (i >= core) | (j >= core)  # global tokens (appended) see and are seen by every token
    return (m & (i < core) & (j < core)) | glob


def _np_forward(params, tokens, cfg) -> np.ndarray:
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)
    B, n = tokens.shape
    d, H = cfg.d, cfg.heads
    pos = np.arange(n)[:, None]
    ang = pos / 10000.0 ** (2 * (np.arange(d) // 2) / d)
    pe = np.where(np.arange(d) % 2 == 0, np.sin(ang), np.cos(ang))
    x = p["embed"][tokens] * np.sqrt(d) + pe

    def ln(x, eps):
        mu = x.mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps)

    from scipy.special import erf
    act = {"relu": lambda z: np.maximum(z, 0.0), "gelu": lambda z: 0.5 * z * (1 + erf(z / np.sqrt(2))),
           "mish": lambda z: z * np.tanh(np.log1p(np.exp(z)))}[cfg.activation]
    allowed = _np_mask(cfg.variant.name, n)
    kind, kk = cfg.variant.kind, cfg.variant.k
    for b in range(cfg.blocks):
        blk = jax.tree_util.tree_map(lambda a: a[b], p["blocks"])
        a = blk["attn"]
        h = ln(x, 0.0 if b == 0 else 1e-5)
        q, k, v = ((h @ a[w]["w"] + a[w]["b"]).reshape(B, n, H, d) for w in ("wq", "wk", "wv"))
        heads = []
        for hh in range(H):
            z = np.einsum("bqd,bkd->bqk", q[:, :, hh], k[:, :, hh]) * cfg.inv_temp / np.sqrt(d)
            keep = np.broadcast_to(allowed, z.shape).copy()
            if kind == "TOPK":
                keep = np.zeros_like(keep)
                top = np.argsort(z, axis=-1)[..., -kk:]
                np.put_along_axis(keep, top, True, axis=-1)
            zm = np.where(keep, z, -np.inf)
            e = np.exp(zm - zm.max(-1, keepdims=True))
            heads.append(np.einsum("bqk,bkd->bqd", e / e.sum(-1, keepdims=True), v[:, :, hh]))
        x = x + np.concatenate(heads, axis=-1) @ a["wo"]["w"] + a["wo"]["b"]
        m = blk["mlp"]
        x = x + act(ln(x, 1e-5) @ m["fc1"]["w"] + m["fc1"]["b"]) @ m["fc2"]["w"] + m["fc2"]["b"]
    return x.mean(axis=1) @ p["head"]["w"] + p["head"]["b"]


@pytest.mark.parametrize("variant, activation", [("FULL", "relu"), ("TOPK(3)", "gelu"), ("BAND(3):1", "mish"),
                                                 ("BLOC(3)", "relu")])
def test_forward_equals_independent_numpy_reference(variant, activation):
    g = parse_variant(variant).global_tokens
    cfg = sm.ModelConfig(n_tokens=4 + g, n_classes=3, seq_len=9 + g, variant=variant, d=6, d_mlp=5, heads=2,
                         blocks=2, activation=activation)
    p32 = sm.init_params(jax.random.PRNGKey(7), cfg)
    # larger-than-init weights so that attention is far from uniform and top-k/masks matter
    p32 = jax.tree_util.tree_map(lambda a: a * 3.0, p32)
    tokens = np.random.default_rng(1).integers(0, 4 + g, (3, 9 + g)).astype(np.int32)
    want = _np_forward(p32, tokens, cfg)
    p64 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), p32)
    got64 = sm.apply(p64, jnp.asarray(tokens), cfg)
    assert got64.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(got64), want, rtol=1e-10, atol=1e-12)
    got32 = sm.apply(p32, jnp.asarray(tokens), cfg)  # the training dtype
    assert got32.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got32), want, rtol=2e-5, atol=2e-5)
    assert np.ptp(want) > 0.1  # the comparison is not between near-constant outputs


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
    out, logits = jax.jit(lambda q, k, v: sm._attend(q, k, v, cfg, mask, None, True))(q, k, v)
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


@pytest.mark.parametrize("variant", ["FULL", "TOPK(5)", "BAND(5)", "BAND(5):1", "BLOC(5)", "BLOC(5):1", "BOTK(5)",
                                     "RND(5)"])
def test_model_attention_equals_former_private_path(variant):
    # the model calls softmax_stability.attention.dot_product_attention; it must give what the
    # model's former private path gave (logits, then maps.softmax / maps.topk_softmax under the
    # variant's mask) to float32 rounding, for every normaliser and mask of the SF variants
    from softmax_stability import maps

    v = parse_variant(variant)
    n = 20 + v.global_tokens
    cfg = sm.ModelConfig(n_tokens=3, n_classes=2, seq_len=n, variant=variant, d=8, heads=2, inv_temp=1.5)
    q, k, val = jax.random.normal(jax.random.PRNGKey(5), (3, 2, n, 2, 8), jnp.float32) * 2.0
    mask = sm.static_mask(cfg)
    key = jax.random.PRNGKey(9)
    got, lg = jax.jit(lambda q, k, val: sm._attend(q, k, val, cfg, mask, key, True))(q, k, val)
    z = jnp.einsum("bqhd,bkhd->bhqk", q, k) * (1.5 / math.sqrt(8))
    np.testing.assert_array_equal(np.asarray(lg), np.asarray(z))
    if v.kind == "FULL":
        p = jax.nn.softmax(z, axis=-1)
    elif v.kind == "TOPK":
        p = maps.topk_softmax(z, v.k)
    elif v.kind == "BOTK":
        p = maps.softmax(z, where=masks.topk_mask(-z, v.k))
    elif v.kind == "RND":  # the same draw from the same key: one key per sample, by its index
        idx = jnp.stack([jax.random.randint(jax.random.fold_in(key, b), z.shape[1:-1] + (v.k,), 0, n)
                         for b in range(z.shape[0])])
        p = maps.softmax(z, where=jnp.any(jax.nn.one_hot(idx, n, dtype=jnp.bool_), axis=-2))
        # a slice of the batch with its offset draws the masks of those samples
        got1, _ = sm._attend(q[1:], k[1:], val[1:], cfg, mask, key, False, 1)
        np.testing.assert_array_equal(np.asarray(got1), np.asarray(got[1:]))
    else:
        p = maps.softmax(z, where=jnp.asarray(mask))
    want = jnp.einsum("bhqk,bkhd->bqhd", p, val)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)


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


@pytest.mark.parametrize("variant", ["RND(3)", "BOTK(3)"])
def test_control_variants_run_to_a_result(tmp_path, variant):
    # the authors' controls (RND: random keys per call, BOTK: the k smallest logits) must finish
    # with statistics, as every Fig. 1 variant does (RND used to crash without a PRNG key there)
    cfg = rn.RunConfig(**{**TINY, "variant": variant})
    res = rn.run(cfg, tmp_path, progress=False)
    assert (res.path / "result.json").exists() and not (res.path / "ckpt.json").exists()
    assert all(len(res.history[k]) == 2 for k in rn.HISTORY_KEYS)
    assert np.isfinite(res.history["train_loss"]).all()
    st = res.stats
    assert st["k"] == 3 and all(np.isfinite(st["delta_s"])) and len(st["lhs_305"]) == 4
    again = rn.run(cfg, tmp_path, progress=False)
    assert again.cached and again.stats == st
    # the recorded statistics are reproducible from the stored model: same key, same RND masks
    x = np.asarray(rn.tasks_mod.load_task("even_pairs", 0, n_train=60, n_val=20, length=12).x_train[:20])
    lg1, lg2 = rn.attention_logits(again, x), rn.attention_logits(again, x)
    np.testing.assert_array_equal(np.asarray(lg1), np.asarray(lg2))
    if variant == "RND(3)":  # a different key draws other keys: later blocks' logits change
        lg3 = rn.attention_logits(again, x, key=jax.random.PRNGKey(123))
        np.testing.assert_array_equal(np.asarray(lg3[0]), np.asarray(lg1[0]))
        assert not np.array_equal(np.asarray(lg3[1]), np.asarray(lg1[1]))


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


# ------------------------------------------------------------------------------------------------
# figure profiles: one source of truth for sizes, deviations and captions


def test_quick_profile_settings_docstring_and_order():
    s = rn.profile_settings("quick")
    assert len(s["seeds"]) == 3 and s["variants"] == rn.FIG1_VARIANTS
    doc = " ".join(rn.profile_settings.__doc__.split())
    for t in s["tasks"]:
        for k, v in rn.profile_overrides("quick", t).items():
            assert f"{k}={v}" in doc, f"profile_settings docstring does not state {k}={v} ({t})"
    cfgs = rn.profile_configs("quick")
    assert len(cfgs) == len(s["tasks"]) * len(s["variants"]) * len(s["seeds"])
    # seed-major: the first runs started together are different programs
    assert len({(c.task, c.variant) for c in cfgs[:len(s["tasks"]) * len(s["variants"])]}) == 12
    assert {c.resolved()["epochs"] for c in cfgs if c.task == "missing_duplicate"} == {62}
    dev = " ".join(rn.profile_deviations("quick"))
    for word in ("3 seeds", "length = 20 (authors: 40)", "blocks = 1 (authors: 5)", "lr = 0.3 (authors: 0.1)",
                 "even_pairs 2000, missing_duplicate 4960"):
        assert word in dev, word
    assert rn.profile_deviations("full") == ["seeds 0..9 (the authors' seed list is not reproduced)"]


def test_fig1_separation_summary_is_computed_from_the_curves():
    from softmax_stability.experiments.sf_results import separation, summary_lines

    e = np.linspace(0.7, 0.2, 10)
    full = np.stack([np.full(10, 0.69), np.full(10, 0.70), np.full(10, 0.68)])
    topk = np.stack([e, e + 0.01, e - 0.01])
    band = full + 0.001
    sep = separation({"FULL": full, "TOPK(5)": topk, "BAND(5)": band})
    assert sep["TOPK(5)"]["below"] == 1.0 and sep["TOPK(5)"]["band_below"] == 1.0
    assert sep["BAND(5)"]["below"] == 0.0 and sep["TOPK(5)"]["late_epochs"] == 5
    assert math.isclose(sep["TOPK(5)"]["final_median"], 0.2)
    text = " ".join(summary_lines("even_pairs", sep))
    assert "learns faster than FULL" in text and "0.200 vs FULL 0.690" in text and "5/5" in text
    assert "median is below FULL's in most late epochs: none" in text
    assert math.isclose(sep["BAND(5)"]["late_gap"], -0.001, abs_tol=1e-9)
    # reversed: the summary says so instead of repeating the paper
    text = " ".join(summary_lines("even_pairs", separation({"FULL": topk, "TOPK(5)": full})))
    assert "NOT shown" in text


# ------------------------------------------------------------------------------------------------
# convergence table: censored epochs

def test_convergence_quantiles_all_reached_is_percentile():
    e = [12.0, 3.0, 40.0, 7.0, 19.0]
    np.testing.assert_allclose(rn.convergence_quantiles(e), np.percentile(e, [25, 50, 75]), rtol=0)


def test_convergence_quantiles_treat_not_reached_as_later_than_every_reached_seed():
    nan = float("nan")
    # 2 of 3 reached: the median is the later of the two, the 75th percentile is censored
    assert rn.convergence_quantiles([14.0, nan, 10.0]) == [12.0, 14.0, math.inf]
    # 2 of 4 reached: the median lies between a reached and a censored seed -> censored
    assert rn.convergence_quantiles([5.0, nan, 9.0, nan])[1] == math.inf
    # none reached
    assert rn.convergence_quantiles([nan, nan]) == [math.inf] * 3
    # the median over reached seeds only (the former rule) would say 10; censoring says later
    assert rn.convergence_quantiles([10.0, nan, nan])[1] == math.inf
    with pytest.raises(ValueError, match="epochs"):
        rn.convergence_quantiles([])


@pytest.mark.parametrize("full, var, want", [
    (20.0, 10.0, (2.0, "exact")),
    (math.inf, 14.0, (25 / 14, "lower")),
    (20.0, math.inf, (20 / 25, "upper")),
])
def test_convergence_speedup_kinds(full, var, want):
    sp, kind = rn.convergence_speedup(full, var, 25)
    assert kind == want[1] and sp == pytest.approx(want[0], rel=1e-15)
    if kind == "lower":  # FULL converges after epoch 25, so its true median is > 25: ratio > bound
        assert all(f / var > sp for f in (25.5, 30.0, 1e3))


def test_convergence_speedup_neither():
    sp, kind = rn.convergence_speedup(math.inf, math.inf, 25)
    assert kind == "none" and math.isnan(sp)
