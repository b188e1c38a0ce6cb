"""The Flax (NNX, Linen) and Equinox layers equal the library's attention core, and the probe's
values equal the library functions applied to logits extracted by hand (jit, fully masked rows,
padding and causal masks)."""

from __future__ import annotations

import functools
import importlib.util
import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from softmax_stability import attention, dilution, focus, jacobian, maps
from softmax_stability.frameworks import SSA

flax = pytest.importorskip("flax")
eqx = pytest.importorskip("equinox")
import optax  # noqa: E402  (a dependency of flax)
from flax import linen as nn  # noqa: E402
from flax import nnx  # noqa: E402

from softmax_stability.frameworks import probe  # noqa: E402
from softmax_stability.frameworks.equinox import MultiheadAttention  # noqa: E402
from softmax_stability.frameworks.flax import Attention, LinenAttention  # noqa: E402

SLOW = pytest.mark.slow
# one small shape everywhere ([batch, seq, features], 2 heads of size 4): every eager op and jitted
# function compiles once for it and is reused by the other tests
X = jax.random.normal(jax.random.PRNGKey(0), (2, 6, 8))
B, T = X.shape[:2]
CAUSAL = jnp.tril(jnp.ones((T, T), bool))


def test_core_package_imports_without_the_frameworks():
    code = ("import sys, softmax_stability, softmax_stability.frameworks; "
            "from softmax_stability import attention, focus; "
            "assert 'flax' not in sys.modules and 'equinox' not in sys.modules, sorted(sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def _nnx_layer(fn, kv_heads=None):
    return nnx.MultiHeadAttention(2, 8, num_kv_heads=kv_heads, decode=False, rngs=nnx.Rngs(0), attention_fn=fn)


@pytest.fixture(scope="module")
def qkv():
    """The projections of the (softmax) NNX layer, which every NNX layer built by _nnx_layer shares."""
    layer = _nnx_layer(Attention())
    return layer, layer.query(X), layer.key(X), layer.value(X)


def _by_hand(layer, x, mask=None, causal=False, normalizer="softmax", **kw):
    q, k, v = layer.query(x), layer.key(x), layer.value(x)
    out = attention.dot_product_attention(q, k, v, normalizer=normalizer, mask=mask, causal=causal, **kw)
    return layer.out(out)


def test_nnx_layer_equals_the_core_and_flax(qkv):
    layer = qkv[0]
    y = layer(X, is_causal=True)
    np.testing.assert_allclose(y, _by_hand(layer, X, causal=True), atol=1e-6)
    # the framework's own attention, same parameters
    np.testing.assert_allclose(y, _nnx_layer(nnx.dot_product_attention)(X, is_causal=True), atol=1e-5)


@pytest.mark.parametrize("normalizer,kw", [("topk", {"k_top": 3}), ("top_n_gamma", {"gamma": 0.5}),
                                           ("sparsemax", {}), ("entmax15", {})])
def test_every_normalizer_in_the_nnx_layer_equals_the_core(qkv, normalizer, kw):
    layer, q, k, v = qkv
    layer = _nnx_layer(Attention(normalizer, **kw))  # same projections (same seed) as the fixture's
    want = attention.dot_product_attention(q, k, v, normalizer=normalizer, mask=CAUSAL, **kw)
    np.testing.assert_allclose(layer(X, mask=CAUSAL), layer.out(want), atol=1e-6)


def test_nnx_ssa_parameters_train_and_serialise():
    ssa = SSA(init="reproduction")
    layer = _nnx_layer(Attention("softmax", ssa=ssa, num_heads=2, head_dim=4, rngs=nnx.Rngs(1)))
    params = nnx.state(layer, nnx.Param)
    assert {"query_alpha", "query_u", "value_alpha", "value_u"} <= set(params["attention_fn"])

    @nnx.jit
    def loss_and_grad(model):
        return nnx.value_and_grad(lambda m: jnp.sum(m(X, is_causal=True) ** 2))(model)

    loss, grads = loss_and_grad(layer)
    for name in ("query_alpha", "query_u", "value_alpha", "value_u"):
        assert float(jnp.max(jnp.abs(grads["attention_fn"][name][...]))) > 0, name
    # a training step moves them; the state round trip (what a checkpoint stores) keeps them
    before = layer.attention_fn.query_alpha[...]
    opt = nnx.Optimizer(layer, optax.sgd(0.1), wrt=nnx.Param)
    opt.update(layer, grads)
    assert not np.allclose(layer.attention_fn.query_alpha[...], before)
    graphdef, state = nnx.split(layer)
    again = nnx.merge(graphdef, jax.tree.map(np.asarray, state))
    np.testing.assert_allclose(loss_and_grad(again)[0], loss_and_grad(layer)[0])


@SLOW
def test_nnx_ssa_equals_the_library_temperatures():
    ssa = SSA(init="reproduction")
    layer = _nnx_layer(Attention("softmax", ssa=ssa, num_heads=2, head_dim=4, rngs=nnx.Rngs(1)))
    af = layer.attention_fn
    q, k, v = layer.query(X), layer.key(X), layer.value(X)
    n = jnp.arange(1, T + 1)[None, :, None]
    temps = {}
    for site, proj in (("query", q), ("value", v)):
        t = {"alpha": getattr(af, f"{site}_alpha")[...], "u": getattr(af, f"{site}_u")[...]}
        temps[site] = attention.ssa_temperatures({"temperature": {site: t}}, proj[..., 0, :],
                                                 config=ssa.config(2, 4, (site,)), n_query=n, n_key=n,
                                                 projected={site: proj})[site]
    ref = attention.dot_product_attention(q, k, v, causal=True, query_temperature=temps["query"],
                                          value_temperature=temps["value"])
    np.testing.assert_allclose(layer(X, is_causal=True), layer.out(ref), atol=1e-6)


@SLOW
def test_nnx_gqa_dropout_and_sow_weights():
    layer = _nnx_layer(Attention("topk", k_top=2, ssa=SSA(), num_heads=2, head_dim=4, num_kv_heads=1,
                                 rngs=nnx.Rngs(1)), kv_heads=1)
    assert layer(X).shape == X.shape
    drop = nnx.MultiHeadAttention(2, 8, decode=False, dropout_rate=0.5, rngs=nnx.Rngs(0),
                                  attention_fn=Attention())
    y_det = drop(X, deterministic=True)
    np.testing.assert_allclose(y_det, _by_hand(drop, X), atol=1e-6)
    y_drop = drop(X, deterministic=False, rngs=nnx.Rngs(dropout=3))
    assert y_drop.shape == X.shape and not np.allclose(y_drop, y_det)
    y, inter = nnx.capture(lambda m, x: m(x, sow_weights=True), nnx.Intermediate)(_nnx_layer(Attention()), X)
    w = inter["attention_weights"][0]
    np.testing.assert_allclose(np.sum(w, -1), 1.0, atol=1e-6)


@pytest.mark.parametrize("normalizer,kw", [("softmax", {}), pytest.param("topk", {"k_top": 3}, marks=SLOW),
                                           pytest.param("entmax15", {}, marks=SLOW)])
def test_linen_layer_equals_the_core(normalizer, kw):
    ssa = SSA(init="reproduction") if normalizer == "topk" else None
    mod = nn.MultiHeadDotProductAttention(num_heads=2, qkv_features=8,
                                          attention_fn=LinenAttention(normalizer, ssa=ssa, **kw))
    ref = nn.MultiHeadDotProductAttention(num_heads=2, qkv_features=8)
    mask = CAUSAL[None, None]
    v = mod.init(jax.random.PRNGKey(0), X, mask=mask)
    y = mod.apply(v, X, mask=mask)
    if ssa is None:
        if normalizer == "softmax":
            np.testing.assert_allclose(y, ref.apply(v, X, mask=mask), atol=1e-5)
        p = v["params"]
        q, k, vv = (jnp.einsum("btd,dnh->btnh", X, p[s]["kernel"]) + p[s]["bias"] for s in ("query", "key", "value"))
        o = attention.dot_product_attention(q, k, vv, normalizer=normalizer, mask=mask, **kw)
        np.testing.assert_allclose(y, jnp.einsum("btnh,nhd->btd", o, p["out"]["kernel"]) + p["out"]["bias"],
                                   atol=1e-5)
    else:
        assert set(v["params"]["attention_fn"]) == {"query_alpha", "query_u", "value_alpha", "value_u"}
    _, rec = probe.collect(mod, X, mask=mask, variables=v)
    assert list(rec) == ["attention"]


def _eqx_by_hand(mha, x, mask, normalizer="softmax"):
    m = mha.mha
    q, k, v = (m._project(p, x) for p in (m.query_proj, m.key_proj, m.value_proj))
    o = attention.dot_product_attention(q, k, v, normalizer=normalizer, mask=mask[None])
    return jax.vmap(m.output_proj)(o.reshape(x.shape[0], -1)), q, k


def test_equinox_layer_equals_the_core_and_is_probed_under_vmap_and_jit():
    mha = MultiheadAttention(2, 8, key=jax.random.PRNGKey(0), name="attn")
    plain = mha.mha
    y, rec = jax.jit(jax.vmap(probe.capture(lambda x: mha(x, x, x, CAUSAL))))(X)
    for b in range(B):
        want, q, k = _eqx_by_hand(mha, X[b], CAUSAL)
        np.testing.assert_allclose(y[b], want, atol=1e-5)
        np.testing.assert_allclose(y[b], plain(X[b], X[b], X[b], CAUSAL), atol=1e-5)  # Equinox's own
        np.testing.assert_allclose(rec["attn"]["logits"][b], jnp.einsum("tnh,snh->nts", q, k) / 2.0,
                                   rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(rec["attn"]["mask"], np.broadcast_to(CAUSAL, (B, 2, T, T)))
    assert mha(X[0], X[0], X[0]).shape == (T, 8)  # outside capture nothing is recorded
    # SSA temperatures are a field: they get gradients (train) and are leaves of the pytree (serialise)
    wrapped = MultiheadAttention.from_module(plain, ssa=SSA(), key=jax.random.PRNGKey(1), name="a")
    assert set(wrapped.temperatures) == {"query_alpha", "query_u", "value_alpha", "value_u"}
    g = eqx.filter_jit(eqx.filter_grad(lambda mod: jnp.sum(mod(X[0], X[0], X[0], CAUSAL) ** 2)))(wrapped)
    assert float(jnp.max(jnp.abs(g.temperatures["value_alpha"]))) > 0


@SLOW
def test_probe_measures_an_equinox_model_along_steps():
    mha = MultiheadAttention(2, 8, key=jax.random.PRNGKey(0), name="attn")
    pr = probe.Probe(every=1, k=3)
    for step in range(2):
        pr.measure(step, lambda t: mha(t, t, t, CAUSAL), X, vmap=True)
    arr = pr.history_arrays()
    assert arr["attn/h1/spectral_norm_max"].shape == (2,) and arr["all/all/delta_s"].shape == (2, 4)
    np.testing.assert_array_equal(arr["step"], [0, 1])


@SLOW
def test_equinox_sparsemax_equals_the_core():
    mha = MultiheadAttention(2, 8, normalizer="sparsemax", key=jax.random.PRNGKey(0))
    np.testing.assert_allclose(mha(X[0], X[0], X[0], CAUSAL), _eqx_by_hand(mha, X[0], CAUSAL, "sparsemax")[0],
                               atol=1e-6)


@functools.partial(jax.jit, static_argnames=("normalizer", "k"))
def _expected(logits, mask, normalizer, k):
    """The probe's summary computed from hand-extracted logits with the library functions
    (jitted once per normaliser: the same functions, compiled for the test's one shape)."""
    if normalizer == "softmax":
        p = maps.softmax(logits, where=mask)
        sn = jacobian.spectral_norm(p)
    else:
        p = maps.sparsemax(jnp.where(mask, logits, -jnp.inf))
        sn = jacobian.sparsemax_spectral_norm(p)
    valid = jnp.any(mask, -1)
    out = {}
    table6 = jax.vmap(lambda lg, m: focus.attention_statistics(lg, k, where=m), in_axes=1)(logits, mask)
    for h in range(logits.shape[1]):
        for m in probe.TABLE6_METRICS:
            out[f"h{h}/{m}"] = table6[m][h]
        vh = valid[:, h]
        mean = lambda a: jnp.sum(jnp.where(vh, a, 0.0)) / jnp.sum(vh)  # noqa: E731  # over visible rows
        out[f"h{h}/spectral_norm_max"] = jnp.max(jnp.where(vh, sn[:, h], -jnp.inf))
        out[f"h{h}/normalized_entropy_mean"] = mean(dilution.normalized_entropy(p[:, h], where=mask[:, h]))
        out[f"h{h}/effective_support_mean"] = mean(dilution.effective_support(p[:, h], where=mask[:, h]))
    return out


PADDING = nn.make_attention_mask(*(2 * [jnp.array([[1] * 6, [1] * 4 + [0] * 2], bool)])).astype(bool)
MASKS = {"causal": jnp.ones((B, 2, T, T), bool),  # with is_causal=True, as every case
         "padding": jnp.broadcast_to(PADDING, (B, 2, T, T)),  # the last 2 tokens of sample 1 are padding
         "fully_masked": jnp.ones((B, 2, T, T), bool).at[:, 1, 0, :].set(False)}  # query 0, head 1: none


@functools.lru_cache(maxsize=None)
def _probed_layer(normalizer):
    layer = _nnx_layer(Attention(normalizer))
    run = nnx.jit(lambda model, x, mask: probe.collect(model, x, mask=mask, is_causal=True))
    return layer, run


@pytest.mark.parametrize("case,normalizer", [
    ("causal", "softmax"), ("padding", "softmax"), ("fully_masked", "softmax"),
    pytest.param("causal", "sparsemax", marks=SLOW), pytest.param("padding", "sparsemax", marks=SLOW),
    pytest.param("fully_masked", "sparsemax", marks=SLOW)])
def test_probe_equals_library_on_hand_extracted_logits(qkv, case, normalizer):
    """Under nnx.jit (one compilation for every mask case), with is_causal and a padding mask or a
    fully masked row, the records and their summary equal the library functions on the logits."""
    _, q, k, _ = qkv
    layer, run = _probed_layer(normalizer)
    mask = MASKS[case]
    y, rec = run(layer, X, mask)
    r = rec["attention"]
    logits = jnp.einsum("btnh,bsnh->bnts", q, k) / math.sqrt(4)  # the logits by hand
    full = mask & CAUSAL
    np.testing.assert_allclose(r["logits"], logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(r["mask"], full)
    np.testing.assert_allclose(y, _by_hand(layer, X, mask=mask, causal=True, normalizer=normalizer), atol=1e-6)
    stats = probe.summarize(rec, k=3, pooled=False)
    for key, val in _expected(logits, full, normalizer, 3).items():
        np.testing.assert_allclose(stats[f"attention/{key}"], val, rtol=2e-5, atol=1e-6, err_msg=key)
    if case == "fully_masked":  # a row that sees no key: zero output weights and zero statistics
        assert float(r["spectral_norm"][0, 1, 0]) == 0.0 and float(r["max_weight"][0, 1, 0]) == 0.0


@pytest.mark.parametrize("call,err", [
    (lambda: Attention("softmaxx"), ValueError),
    (lambda: Attention("topk"), ValueError),
    (lambda: Attention("topk", k_top=0), ValueError),
    (lambda: Attention("softmax", k_top=2), ValueError),
    (lambda: Attention("top_n_gamma", gamma=1.5), ValueError),
    (lambda: Attention(ssa=SSA()), ValueError),
    (lambda: Attention(ssa="yes", num_heads=2, head_dim=4, rngs=nnx.Rngs(0)), TypeError),
    (lambda: SSA(query=False, value=False), ValueError),
    (lambda: SSA(position=False, token=False), ValueError),
    (lambda: SSA(init="zeros"), ValueError),
    (lambda: SSA(parametrisation="cubic"), ValueError),
    (lambda: SSA(alpha=float("nan")), ValueError),
    (lambda: Attention()(X[..., None, :], X[..., None, :], X[..., None, :], bias=jnp.zeros((2, 1, 6, 6))), ValueError),
    (lambda: Attention("topk", k_top=9)(X[..., None, :], X[..., None, :], X[..., None, :]), ValueError),
    (lambda: LinenAttention("entmax"), ValueError),
    (lambda: MultiheadAttention(2, 8, normalizer="topk", key=jax.random.PRNGKey(0)), ValueError),
    (lambda: MultiheadAttention.from_module(object()), TypeError),
    (lambda: probe.summarize({}), ValueError),
    (lambda: probe.summarize({"a": {}}, k=0), ValueError),
    (lambda: probe.Probe(every=0), ValueError),
    (lambda: probe.collect(lambda x: x, X), ValueError),
    (lambda: probe.collect(_nnx_layer(nnx.dot_product_attention), X), ValueError),
])
def test_bad_input(call, err):
    with pytest.raises(err):
        call()


def test_example_runs(tmp_path):
    """A smoke run of docs/examples/flax_probe.py (a tiny model, 3 steps; the example itself trains
    300 steps), which also writes the probe's CSV and plot."""
    root = __import__("pathlib").Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("flax_probe", root / "docs/examples/flax_probe.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    # the probe test's shapes ([2 samples, 2 heads, 6, 6], k = 3): summarize's compilation is shared
    res = mod.main(steps=3, out=tmp_path, every=2, n_train=64, length=6, d=8, heads=2, blocks=1, n_probe=2, k=3)
    assert res["steps"] == [0, 2, 3] and len(res["val_accuracy"]) == 3
    assert (tmp_path / "flax_probe.png").stat().st_size > 0 and (tmp_path / "flax_probe_table6.md").exists()
    lines = (tmp_path / "flax_probe_history.csv").read_text().splitlines()
    assert lines[0] == "step,layer,head,metric,quantile,value"
    assert any(ln.startswith("3,all,all,sep,25,") for ln in lines)
    assert any(ln.startswith("0,blocks.0.attn,h1,spectral_norm_max,,") for ln in lines)
    assert np.isfinite(res["final_table6"]["lhs_304"]).all()
