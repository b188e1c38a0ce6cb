"""Issue 17: retrieval tasks, the nine-variant decoder, dilution measurements, runs and their cache."""

import json
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from softmax_stability import attention, dilution, maps, temperature
from softmax_stability.experiments import retrieval_tasks as rt
from softmax_stability.experiments import ssa_decoder as dec
from softmax_stability.experiments import ssa_retrieval as sr
from softmax_stability.experiments.runner import CorruptCacheWarning


# ------------------------------------------------------------------------------------------------
# task labels against a plain-Python reference


def _reference(tokens, task):
    """Scan the tokens: passkey -> the token after the one MARKER; MQAR -> for each trailing query
    key, the token after that key's one occurrence in the context."""
    toks = [int(t) for t in tokens]
    T = len(toks)
    if task.name == "passkey":
        assert toks.count(task.marker) == 1 and toks.count(task.query) == 1 and toks[-1] == task.query
        i = toks.index(task.marker)
        return [T - 1], [i + 1], [toks[i + 1]]
    Q = task.n_queries
    C = T - Q
    qpos, apos, ans = [], [], []
    for t in range(C, T):
        hits = [j for j in range(C) if toks[j] == toks[t]]
        assert len(hits) == 1, "a queried key must occur exactly once in the context"
        qpos.append(t)
        apos.append(hits[0] + 1)
        ans.append(toks[hits[0] + 1])
    return qpos, apos, ans


@pytest.mark.parametrize("task,length", [
    (rt.RetrievalTask("passkey"), 3), (rt.RetrievalTask("passkey", value_filler=0.5), 40),
    (rt.RetrievalTask("mqar", n_pairs=4, n_queries=4), 12),
    (rt.RetrievalTask("mqar", n_pairs=3, n_queries=2, value_filler=1.0), 37)])
def test_task_labels_match_reference(task, length):
    b = rt.generate(jax.random.PRNGKey(3), task, batch_size=24, length=length)
    assert b.tokens.shape == (24, length) and b.tokens.dtype == jnp.int32
    assert int(b.tokens.min()) >= 0 and int(b.tokens.max()) < task.vocab_size
    for i in range(24):
        qpos, apos, ans = _reference(np.asarray(b.tokens[i]), task)
        assert b.query_positions[i].tolist() == qpos
        assert b.answer_positions[i].tolist() == apos
        assert b.answers[i].tolist() == ans
        assert all(task.value_offset <= a < task.marker for a in ans)  # answers are value tokens
        if task.name == "mqar":
            ctx = [int(t) for t in b.tokens[i, :length - task.n_queries]]
            keys = [t for t in ctx if task.key_offset <= t < task.value_offset]
            assert len(keys) == task.n_pairs == len(set(keys))  # distinct keys, only in the pairs


def test_generate_is_deterministic_and_padding_is_causal_safe():
    task = rt.RetrievalTask("passkey")
    a = rt.generate(jax.random.PRNGKey(0), task, batch_size=3, length=9)
    b = rt.generate(jax.random.PRNGKey(0), task, batch_size=3, length=9)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    p = rt.pad_batch(a, 15)
    assert p.tokens.shape == (3, 15) and np.array_equal(p.tokens[:, :9], a.tokens)
    assert np.array_equal(p.answers, a.answers)


# ------------------------------------------------------------------------------------------------
# every variant's forward pass is the library's attention


def _library_layer(a, h, cfg):
    sc = dec.ssa_config(cfg)
    if sc is not None:
        return attention.selective_self_attention(a, h, positions=0, config=sc)
    if cfg.variant == "ssmax":  # SSMax: dot_product_attention with the query temperature s ln n
        T = h.shape[1]
        q, k, v = (jnp.einsum("btd,dnh->btnh", h, a["w" + c]) + a["b" + c] for c in "qkv")
        s = jax.nn.softplus(a["ssmax"]["rho"])
        tq = temperature.ssmax(np.maximum(np.arange(1, T + 1), 2)[:, None].astype(np.float32), s)
        o = attention.dot_product_attention(q, k, v, causal=True, query_temperature=tq)
        return jnp.einsum("btnh,nhd->btd", o, a["wo"]) + a["bo"]
    base = {k: a[k] for k in a}
    return attention.multi_head_attention(base, h, causal=True, normalizer=cfg.normalizer,
                                          k_top=cfg.k_top if cfg.variant == "topk" else None)


@pytest.mark.parametrize("variant", dec.VARIANTS)
def test_variant_forward_equals_library_core(variant):
    cfg = dec.DecoderConfig(11, variant, d_model=8, num_heads=2, k_top=3, ssa_mlp_hidden=4)
    params = dec.init(jax.random.PRNGKey(0), cfg)
    a = params["blocks"][0]["attn"]
    h = jax.random.normal(jax.random.PRNGKey(1), (2, 7, 8), jnp.float32)
    y = dec.attention_block(a, h, cfg)
    np.testing.assert_allclose(y, _library_layer(a, h, cfg), atol=2e-6)
    # only the query rows: the same rows of the full computation
    rows = jnp.array([[6, 2], [4, 5]], jnp.int32)
    np.testing.assert_allclose(dec.attention_block(a, h, cfg, rows), jnp.take_along_axis(y, rows[..., None], 1),
                               atol=2e-6)
    # the probe's weights reproduce the block output (value temperature applied to v)
    tokens = jax.random.randint(jax.random.PRNGKey(2), (2, 7), 0, 11)
    pr = dec.attention_probe(params, tokens, cfg, rows)[0]
    h0 = dec._ln(params["blocks"][0]["ln1"], dec._embed(params, tokens))
    v = jnp.einsum("btd,dnh->btnh", h0, a["wv"]) + a["bv"]
    if pr["value_temperature"] is not None:
        v = v * pr["value_temperature"][..., None]
    o = jnp.einsum("bnqt,btnh->bqnh", pr["weights"], v)
    np.testing.assert_allclose(jnp.einsum("bqnh,nhd->bqd", o, a["wo"]) + a["bo"],
                               dec.attention_block(a, h0, cfg, rows), atol=2e-6)
    np.testing.assert_allclose(pr["weights"].sum(-1), 1.0, atol=1e-6)
    assert float(jnp.max(jnp.where(pr["visible"], 0.0, pr["weights"]))) == 0.0  # causal
    # the model's logits at the query rows equal those of the full sequence
    np.testing.assert_allclose(dec.apply(params, tokens, cfg, query_positions=rows),
                               jnp.take_along_axis(dec.apply(params, tokens, cfg), rows[..., None], 1), atol=2e-5)


# ------------------------------------------------------------------------------------------------
# measured dilution against the closed form


@pytest.mark.parametrize("n,gap,tau", [(2, 0.5, 1.0), (64, 3.0, 1.0), (500, 2.0, 2.7)])
def test_needle_instance_measures_exactly_the_closed_form(n, gap, tau):
    ell = np.zeros((1, 1, 1, n))
    a = n // 3
    ell[..., a] = gap
    p = maps.softmax(tau * jnp.asarray(ell))
    m = sr.dilution_measurements(p, ell, np.full((1, 1, 1), tau), np.ones((1, 1, 1, n), bool), np.array([[a]]))
    assert float(m["gap"][0, 0, 0]) == pytest.approx(gap, abs=1e-12)
    assert float(m["weight"][0, 0, 0]) == pytest.approx(float(dilution.needle_probability(n, gap, tau)), rel=1e-12)
    assert float(m["closed_form"][0, 0, 0]) == pytest.approx(float(m["weight"][0, 0, 0]), rel=1e-12)
    assert float(m["entropy"][0, 0, 0]) == pytest.approx(
        float(dilution.needle_entropy(n, gap, tau, normalized=True)), rel=1e-9)


def test_unequal_distractors_stay_below_the_closed_form_and_the_mask_counts():
    rng = np.random.default_rng(0)
    ell = rng.normal(size=(3, 2, 4, 20))
    vis = np.broadcast_to(np.arange(20) <= np.array([9, 12, 15, 19])[:, None], (3, 1, 4, 20))
    tau = rng.uniform(0.5, 2.0, size=(3, 4, 2))
    p = maps.softmax(jnp.asarray(ell) * np.transpose(tau, (0, 2, 1))[..., None], where=vis)
    ans = rng.integers(0, 10, size=(3, 4))
    m = sr.dilution_measurements(p, ell, tau, vis, ans)
    assert np.all(np.asarray(m["weight"]) <= np.asarray(m["closed_form"]) + 1e-12)  # Jensen
    assert np.array_equal(np.asarray(m["n"][0, 0]), [10, 13, 16, 20])


def test_calibrated_needle_reproduces_the_training_length_and_the_law():
    w0, n, tau = 0.8, np.array([32.0, 64.0, 512.0]), np.array([1.3, 1.5, 2.0])
    pred = sr.calibrated_needle([w0, 0.0, 0.0], n, tau)
    assert pred[0] == pytest.approx(w0, rel=1e-12)
    d0 = (np.log(w0 / (1 - w0)) + np.log(31.0)) / 1.3
    np.testing.assert_allclose(pred, dilution.needle_probability(n, d0, tau), rtol=1e-12)


# ------------------------------------------------------------------------------------------------
# bad settings name their argument


def test_bad_settings_raise_naming_the_argument():
    pk = rt.RetrievalTask("passkey")
    with pytest.raises(ValueError, match="length"):
        rt.generate(jax.random.PRNGKey(0), pk, batch_size=1, length=1)
    with pytest.raises(ValueError, match="length"):
        rt.generate(jax.random.PRNGKey(0), pk, batch_size=1, length=2)  # passkey needs 3
    with pytest.raises(ValueError, match="length"):
        rt.generate(jax.random.PRNGKey(0), rt.RetrievalTask("mqar", n_pairs=4, n_queries=2), batch_size=1, length=9)
    with pytest.raises(ValueError, match="train_length"):
        sr.RetrievalRun(train_length=1).resolved()
    with pytest.raises(ValueError, match="n_queries"):
        rt.RetrievalTask("mqar", n_pairs=2, n_queries=3)
    with pytest.raises(ValueError, match="name"):
        rt.RetrievalTask("needle")
    with pytest.raises(ValueError, match="value_filler"):
        rt.RetrievalTask("passkey", value_filler=1.5)
    # k > n
    with pytest.raises(ValueError, match="k_top"):
        sr.RetrievalRun(variant="topk", k_top=33, train_length=32).resolved()
    cfg = dec.DecoderConfig(10, "topk", d_model=8, k_top=5)
    with pytest.raises(ValueError, match="k_top"):
        dec.apply(dec.init(jax.random.PRNGKey(0), cfg), jnp.zeros((1, 4), jnp.int32), cfg)
    # non-positive s
    for s in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="ssmax_s"):
            dec.DecoderConfig(10, "ssmax", ssmax_s=s)
    with pytest.raises(TypeError, match="ssmax_s"):
        dec.DecoderConfig(10, "ssmax", ssmax_s="1")
    # a test length below the training length
    with pytest.raises(ValueError, match="test_lengths"):
        sr.RetrievalRun(train_length=32, test_lengths=(16, 32)).resolved()
    with pytest.raises(ValueError, match="variant"):
        dec.DecoderConfig(10, "flash")
    with pytest.raises(ValueError, match="chunk"):
        sr.RetrievalRun(steps=10, chunk=3).resolved()
    with pytest.raises(ValueError, match="profile"):
        sr.profile_settings("medium")


# ------------------------------------------------------------------------------------------------
# runs: cached, resumable, bit-identical after an interruption


# the smoke profile's settings: in one pytest process the compiled training and evaluation of the
# smoke figures are reused here
TINY = dict(task="passkey", **sr.profile_settings("smoke")["common"])


def test_run_caches_and_resumes_bit_identically(tmp_path, monkeypatch):
    spec = sr.RetrievalRun(variant="ssa_shared", **TINY)
    full = sr.run(spec, tmp_path / "a", progress=False)
    S, steps = len(TINY["seeds"]), TINY["steps"]
    assert not full.cached and full.history["accuracy"].shape == (S, steps)
    assert set(sr.MEASURES) <= set(full.evaluation)
    assert full.evaluation["weight"].shape == (S, len(TINY["test_lengths"]))
    again = sr.run(spec, tmp_path / "a", progress=False)
    assert again.cached and np.array_equal(again.evaluation["weight"], full.evaluation["weight"])
    params = sr.load_params(again)
    assert jax.tree_util.tree_leaves(params)[0].shape[0] == S

    # interrupt after the first chunk, then resume from its checkpoint
    real = sr._train_chunk
    calls = []

    def flaky(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(sr, "_train_chunk", flaky)
    with pytest.raises(KeyboardInterrupt):
        sr.run(spec, tmp_path / "b", progress=False)
    entry = tmp_path / "b" / spec.key()
    assert json.loads((entry / "ckpt.json").read_text())["step"] == TINY["chunk"]
    assert not (entry / "result.json").exists()
    monkeypatch.setattr(sr, "_train_chunk", real)
    resumed = sr.run(spec, tmp_path / "b", progress=False)
    assert np.array_equal(resumed.history["loss"], full.history["loss"])
    for k in sr.MEASURES:
        np.testing.assert_array_equal(resumed.evaluation[k], full.evaluation[k])

    # a corrupt entry is reported and recomputed
    rj = entry / "result.json"
    rj.write_text(rj.read_text().replace('"eval_size": 16', '"eval_size": 17'))
    with pytest.warns(CorruptCacheWarning):
        redo = sr.run(spec, tmp_path / "b", progress=False)
    assert not redo.cached


def test_summaries_and_overhead_table():
    rows = {r[0]: r for r in sr.overhead_rows(profile="smoke")}
    assert [rows[v][1] for v in ("vanilla", "topk", "sparsemax", "entmax15")] == [0, 0, 0, 0]
    assert rows["ssmax"][1] == 2  # one s per head
    d, N = 16, 2
    # per site (query, value): alpha and u_h for every head (N * H = d)
    assert rows["ssa_shared"][1] == attention.ssa_new_parameter_count(attention.SSAConfig(d, N)) == 2 * (1 + d)
    assert rows["ssa_position"][1] == 1
    assert rows["ssa_shared"][5] < 0.5  # the abstract's claim, at GPT-2 small
    assert sr.steps_to_target(np.r_[np.zeros(10), np.ones(30)], 0.9, window=5) == 15.0
