"""The Flax (NNX, Linen) and Equinox layers equal the library's attention core, and the probe's
values equal the library functions applied to logits extracted by hand (jit, fully masked rows,
padding and causal masks)."""

from __future__ import annotations

import importlib
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
from flax import linen as nn  # noqa: E402
from flax import nnx  # noqa: E402

from softmax_stability.frameworks import probe  # noqa: E402
from softmax_stability.frameworks.equinox import MultiheadAttention  # noqa: E402
from softmax_stability.frameworks.flax import Attention, LinenAttention  # noqa: E402

SLOW = pytest.mark.slow
NORMS = [("softmax", {}), pytest.param("topk", {"k_top": 3}, marks=SLOW),
         pytest.param("top_n_gamma", {"gamma": 0.5}, marks=SLOW), ("sparsemax", {}),
         pytest.param("entmax15", {}, marks=SLOW)]
X = jax.random.normal(jax.random.PRNGKey(0), (2, 6, 8))


def test_core_package_imports_without_the_frameworks():
    code = ("import sys, softmax_stability, softmax_stability.frameworks; "
            "from softmax_stability import attention, focus; "
            "assert 'flax' not in sys.modules and 'equinox' not in sys.modules, sorted(sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def _nnx_layer(fn, kv_heads=None):
    return nnx.MultiHeadAttention(2, 8, num_kv_heads=kv_heads, decode=False, rngs=nnx.Rngs(0), attention_fn=fn)


def _by_hand(layer, x, mask=None, causal=False, normalizer="softmax", **kw):
    q, k, v = layer.query(x), layer.key(x), layer.value(x)
    out = attention.dot_product_attention(q, k, v, normalizer=normalizer, mask=mask, causal=causal, **kw)
    return layer.out(out)


@pytest.mark.parametrize("normalizer,kw", NORMS)
def test_nnx_layer_equals_the_core(normalizer, kw):
    layer = _nnx_layer(Attention(normalizer, **kw))
    np.testing.assert_allclose(layer(X, is_causal=True), _by_hand(layer, X, causal=True, normalizer=normalizer, **kw),
                               atol=1e-6)
    if normalizer == "softmax":  # the framework's own attention, same parameters
        plain = _nnx_layer(nnx.dot_product_attention)
        np.testing.assert_allclose(layer(X, is_causal=True), plain(X, is_causal=True), atol=1e-5)


def test_nnx_ssa_parameters_train_and_serialise():
    ssa = SSA(init="reproduction")
    layer = _nnx_layer(Attention("softmax", ssa=ssa, num_heads=2, head_dim=4, rngs=nnx.Rngs(1)))
    params = nnx.state(layer, nnx.Param)
    assert {"query_alpha", "query_u", "value_alpha", "value_u"} <= set(params["attention_fn"])
    # equals the library's SSA temperatures applied by hand
    af = layer.attention_fn
    q, k, v = layer.query(X), layer.key(X), layer.value(X)
    T = X.shape[1]
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

    def loss(model):
        return jnp.sum(model(X, is_causal=True) ** 2)

    grads = nnx.grad(loss)(layer)
    assert float(jnp.abs(grads["attention_fn"]["query_alpha"][...])) > 0
    # round trip through the state (what a checkpoint stores)
    graphdef, state = nnx.split(layer)
    again = nnx.merge(graphdef, jax.tree.map(lambda a: a + 0, state))
    np.testing.assert_allclose(again(X, is_causal=True), layer(X, is_causal=True))


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
    mask = nn.make_causal_mask(jnp.ones(X.shape[:2])).astype(bool)
    v = mod.init(jax.random.PRNGKey(0), X, mask=mask)
    y = mod.apply(v, X, mask=mask)
    if ssa is None:
        np.testing.assert_allclose(y, ref.apply(v, X, mask=mask), atol=1e-5) if normalizer == "softmax" else None
        p = v["params"]
        q, k, vv = (jnp.einsum("btd,dnh->btnh", X, p[s]["kernel"]) + p[s]["bias"] for s in ("query", "key", "value"))
        o = attention.dot_product_attention(q, k, vv, normalizer=normalizer, mask=mask, **kw)
        np.testing.assert_allclose(y, jnp.einsum("btnh,nhd->btd", o, p["out"]["kernel"]) + p["out"]["bias"],
                                   atol=1e-5)
    else:
        assert set(v["params"]["attention_fn"]) == {"query_alpha", "query_u", "value_alpha", "value_u"}
    _, rec = probe.collect(mod, X, mask=mask, variables=v)
    assert list(rec) == ["attention"]


@pytest.mark.parametrize("normalizer,kw", [("softmax", {}), pytest.param("sparsemax", {}, marks=SLOW)])
def test_equinox_layer_equals_the_core(normalizer, kw):
    mha = MultiheadAttention(2, 8, normalizer=normalizer, key=jax.random.PRNGKey(0), **kw)
    plain = mha.mha
    x = X[0]
    mask = jnp.tril(jnp.ones((6, 6), bool))
    m = plain
    q, k, v = (m._project(p, x) for p in (m.query_proj, m.key_proj, m.value_proj))
    o = attention.dot_product_attention(q, k, v, normalizer=normalizer, mask=mask[None])
    np.testing.assert_allclose(mha(x, x, x, mask), jax.vmap(m.output_proj)(o.reshape(6, -1)), atol=1e-6)
    if normalizer == "softmax":
        np.testing.assert_allclose(mha(x, x, x, mask), plain(x, x, x, mask), atol=1e-5)
    wrapped = MultiheadAttention.from_module(plain, ssa=SSA(), key=jax.random.PRNGKey(1), name="a")
    y = jax.jit(jax.vmap(lambda t: wrapped(t, t, t)))(X)
    assert y.shape == X.shape
    g = eqx.filter_grad(lambda mod: jnp.sum(mod(x, x, x) ** 2))(wrapped)
    assert float(jnp.abs(g.temperatures["value_alpha"])) > 0


def _expected(logits, mask, normalizer, k, kw):
    """The probe's summary computed from hand-extracted logits with the library functions."""
    if normalizer == "softmax":
        p = maps.softmax(logits, where=mask)
        sn = jacobian.spectral_norm(p)
    else:
        p = maps.sparsemax(jnp.where(mask, logits, -jnp.inf))
        sn = jacobian.sparsemax_spectral_norm(p)
    valid = np.asarray(jnp.any(mask, -1))
    out = {}
    for h in range(logits.shape[1]):
        st = focus.attention_statistics(logits[:, h], k, where=mask[:, h])
        for m in probe.TABLE6_METRICS:
            out[f"h{h}/{m}"] = np.asarray(st[m])
        vh = valid[:, h]
        out[f"h{h}/spectral_norm_max"] = np.asarray(sn[:, h])[vh].max()
        out[f"h{h}/normalized_entropy_mean"] = np.asarray(
            dilution.normalized_entropy(p[:, h], where=mask[:, h]))[vh].mean()
        out[f"h{h}/effective_support_mean"] = np.asarray(
            dilution.effective_support(p[:, h], where=mask[:, h]))[vh].mean()
    return out


@pytest.mark.parametrize("case,normalizer", [
    ("causal", "softmax"), ("fully_masked", "softmax"), ("padding", "sparsemax"),
    pytest.param("padding", "softmax", marks=SLOW), pytest.param("causal", "sparsemax", marks=SLOW),
    pytest.param("fully_masked", "sparsemax", marks=SLOW)])
def test_probe_equals_library_on_hand_extracted_logits(case, normalizer):
    layer = _nnx_layer(Attention(normalizer))
    B, T = X.shape[:2]
    causal = case == "causal"
    mask = None
    if case == "padding":  # the last two tokens of sample 1 are padding
        keep = jnp.array([[1] * 6, [1] * 4 + [0] * 2], bool)
        mask = nn.make_attention_mask(keep, keep).astype(bool)
    elif case == "fully_masked":  # query 0 of head 1 sees nothing
        mask = jnp.ones((B, 2, T, T), bool).at[:, 1, 0, :].set(False)

    @nnx.jit
    def run(model, x):
        return probe.collect(model, x, mask=mask, is_causal=causal)

    y, rec = run(layer, X)
    r = rec["attention"]
    # the logits by hand
    q, k = layer.query(X), layer.key(X)
    logits = jnp.einsum("btnh,bsnh->bnts", q, k) / math.sqrt(4)
    full = jnp.ones((B, 2, T, T), bool) if mask is None else jnp.broadcast_to(mask, (B, 2, T, T))
    if causal:
        full = full & jnp.tril(jnp.ones((T, T), bool))
    np.testing.assert_allclose(r["logits"], logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(r["mask"], full)
    # the recorded weights reproduce the layer's output
    stats = probe.summarize(rec, k=3)
    want = _expected(logits, full, normalizer, 3, {})
    for key, val in want.items():
        np.testing.assert_allclose(stats[f"attention/{key}"], val, rtol=2e-5, atol=1e-6, err_msg=key)
    if case == "fully_masked":
        assert float(r["spectral_norm"][0, 1, 0]) == 0.0 and float(r["max_weight"][0, 1, 0]) == 0.0
        np.testing.assert_allclose(y, _by_hand(layer, X, mask=mask, normalizer=normalizer), atol=1e-6)


def test_probe_equinox_capture_under_vmap_and_jit(tmp_path):
    mha = MultiheadAttention(2, 8, key=jax.random.PRNGKey(0), name="attn")
    mask = jnp.tril(jnp.ones((6, 6), bool))
    f = jax.jit(jax.vmap(probe.capture(lambda x: mha(x, x, x, mask))))
    y, rec = f(X)
    m = mha.mha
    q, k = (jax.vmap(lambda x, p=p: m._project(p, x))(X) for p in (m.query_proj, m.key_proj))
    logits = jnp.einsum("btnh,bsnh->bnts", q, k) / 2.0
    np.testing.assert_allclose(rec["attn"]["logits"], logits, rtol=1e-5, atol=1e-5)
    st = probe.summarize(rec, k=2)
    ref = focus.attention_statistics(logits[:, 0], 2, where=jnp.broadcast_to(mask, (2, 6, 6)))
    np.testing.assert_allclose(st["attn/h0/delta_s"], ref["delta_s"], rtol=1e-5)
    # outside capture nothing is recorded
    assert mha(X[0], X[0], X[0]).shape == (6, 8)

    pr = probe.Probe(every=1, k=2)
    for s in range(2):
        pr.measure(s, lambda t: mha(t, t, t), X, vmap=True)
    arr = pr.history_arrays()
    assert arr["attn/h1/spectral_norm_max"].shape == (2,) and arr["all/all/delta_s"].shape == (2, 4)
    path = pr.write_csv(tmp_path / "p.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "step,layer,head,metric,quantile,value" and any(",all,all,sep,25," in ln for ln in lines)
    assert pr.plot(tmp_path / "p.png").stat().st_size > 0


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
    root = __import__("pathlib").Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("flax_probe", root / "docs/examples/flax_probe.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.main(steps=4, out=tmp_path, every=2, n_train=64)
    assert (tmp_path / "flax_probe.png").stat().st_size > 0
    assert (tmp_path / "flax_probe_history.csv").exists() and (tmp_path / "flax_probe_table6.md").exists()
    assert np.isfinite(res["final_table6"]["lhs_304"]).all()
