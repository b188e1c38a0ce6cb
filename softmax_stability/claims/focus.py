"""Claims of the Semantic Focus family (Ram et al. 2025, "SF"): logit and dispersion bounds, key
mass, top-k local stability, the comparison conditions (304)/(305) and their region boundaries,
and the stability constants derived in :mod:`softmax_stability.focus` against autodiff.

Every bound is a function of :mod:`softmax_stability.focus` (one formula, one place). Measures
are computed independently: logits from the query/key projections rather than the bilinear
matrix, weights by :mod:`softmax_stability.maps`, in-degrees from :mod:`softmax_stability.masks`,
region boundaries by the authors' grid search, local constants by forward-mode autodiff and a
dense SVD, finite ones by evaluating the map at two points.

Static sizes (``n``, ``k``) travel in a batch as the trailing shape of a dummy array
(``kdim`` of shape ``(count, k)``), because the verifier vmaps over a dict of arrays.
Instance generation happens in NumPy (seeded from the verifier's key), outside ``jit``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from softmax_stability.claims._registry import Claim, register

FAMILY = "focus"
_LN2 = math.log(2.0)


def _rng(key) -> np.random.Generator:
    """NumPy generator seeded by the key's bits (no jax.random call: its compile costs ~1 s)."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.random.default_rng(np.asarray(key).ravel().tolist())


def _F():
    import softmax_stability.focus as F

    return F


def _log_uniform(rng, lo, hi, size):
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size))


# ---------------------------------------------------------------------------------------------
# F1, F1b: |x^T W y| <= Gamma Xi^2 and delta <= 2 Gamma Xi^2


def _qk_batch(rng, count, n_tok, d_qk=4, d_in=3, bias=True):
    b = {
        "w_q": rng.normal(size=(count, d_qk, d_in)) * _log_uniform(rng, 0.1, 5.0, (count, 1, 1)),
        "w_k": rng.normal(size=(count, d_qk, d_in)),
        "x": rng.normal(size=(count, n_tok, d_in)) * _log_uniform(rng, 0.1, 5.0, (count, n_tok, 1)),
        "tau": _log_uniform(rng, 0.2, 5.0, count),
    }
    if bias:
        b["b_q"] = rng.normal(size=(count, d_qk))
        b["b_k"] = rng.normal(size=(count, d_qk))
    return b


def _logits_qk(prm):
    """Logits from the projections, (W_Q x + b_Q).(W_K y + b_K) tau / sqrt(d): not via W."""
    x = prm["x"]
    q = x @ prm["w_q"].T + prm.get("b_q", 0.0)
    k = x @ prm["w_k"].T + prm.get("b_k", 0.0)
    return prm["tau"] * (q @ k.T) / math.sqrt(prm["w_q"].shape[0])


def _gamma_xi2(prm):
    F = _F()
    has_bias = "b_q" in prm
    g = F.qk_norm(prm["w_q"], prm["w_k"], prm.get("b_q"), prm.get("b_k"), tau=prm["tau"])
    xi = F.max_token_norm(prm["x"], bias_augmented=has_bias)
    return g * xi**2


def _sample_f1(key):
    rng = _rng(key)
    # with biases: random; bias-free: the adversary (same shapes, so one compilation each)
    return [_qk_batch(rng, 256, 2, bias=True)]


def _adversary_singular(key, n_tok, ratio=None):
    """Tokens along the top singular vectors of W (bias-free): |x^T W y| = sigma_1 Xi^2 exactly;
    with keys +-Xi v_1 the dispersion of query Xi u_1 is 2 sigma_1 Xi^2."""
    rng = _rng(key)
    b = _qk_batch(rng, 32, n_tok, bias=False)
    b["x"] = b["x"].copy()
    xs = b["x"]
    for i in range(16):  # the other half stays random (bias-free random instances)
        W = b["tau"][i] * b["w_q"][i].T @ b["w_k"][i] / math.sqrt(b["w_q"].shape[1])
        u, _, vt = np.linalg.svd(W)
        xi = float(_log_uniform(rng, 0.1, 5.0, 1)[0])
        xs[i, 0] = xi * u[:, 0]
        for t in range(1, n_tok):
            xs[i, t] = (xi if t % 2 else -xi) * vt[0]
    return [b]


register(Claim(
    id="F1-logit-bound",
    family=FAMILY,
    statement=r"|\tilde x^\top W \tilde y| \le \|W\|_2\,\Xi^2 = \Gamma\Xi^2,\ "
              r"W = \tau\tilde W_Q^\top\tilde W_K/\sqrt d",
    source="derived here (Cauchy-Schwarz; semantic_focus.md §2.4 O4); Gamma as in SF was.py",
    kind="upper",
    bound=_gamma_xi2,
    measure=lambda prm: jnp.max(jnp.abs(_logits_qk(prm))),
    sample=_sample_f1,
    adversary=lambda key, ratio=None: _adversary_singular(key, 2),
    sharp=True,
    proof=None,
    numeric_only_reason="one-line Cauchy-Schwarz with the operator norm; checked numerically, "
                        "sharpness by the singular-vector construction",
    rtol=1e-12,
))


def _sample_f1b(key):
    rng = _rng(key)
    return [_qk_batch(rng, 128, 6, bias=True)]


register(Claim(
    id="F1b-dispersion-bound",
    family=FAMILY,
    statement=r"\delta_i = \max_j a_{ij} - \min_j a_{ij} \le 2\Gamma\Xi^2",
    source="derived here (semantic_focus.md §2.4 O4; SF code's worst case delta_s = 2 Gamma Xi^2)",
    kind="upper",
    bound=lambda prm: 2.0 * _gamma_xi2(prm),
    measure=lambda prm: jnp.max(_F().dispersion(_logits_qk(prm))),
    sample=_sample_f1b,
    adversary=lambda key, ratio=None: _adversary_singular(key, 6),
    sharp=True,
    proof=None,
    numeric_only_reason="follows from F1 by the triangle inequality; checked numerically",
    rtol=1e-12,
))


# ---------------------------------------------------------------------------------------------
# F2: delta_h + Delta <= delta_s


def _sample_f2(key):
    rng = _rng(key)
    out = []
    for n, k, count in ((10, 3, 256), (10, 9, 256)):
        z = rng.normal(size=(count, n)) * _log_uniform(rng, 0.01, 30.0, (count, 1))
        out.append({"z": z, "kdim": np.zeros((count, k))})
    # integer logits: ties, Delta = 0 and delta_h = 0 occur
    z = rng.integers(-2, 3, size=(256, 10)).astype(float)
    out.append({"z": z, "kdim": np.zeros((256, 3))})
    return out


register(Claim(
    id="F2-topk-dispersion-plus-separation",
    family=FAMILY,
    statement=r"\delta_h + \Delta \le \delta_s\ \text{per query } (k < n)",
    source="derived here (semantic_focus.md §2.4 O5); equality iff the (k+1)-th logit is the minimum",
    kind="upper",
    bound=lambda prm: _F().dispersion(prm["z"]),
    measure=lambda prm: (_F().dispersion(prm["z"], prm["kdim"].shape[-1])
                         + _F().separation(prm["z"], prm["kdim"].shape[-1])),
    sample=_sample_f2,
    sharp=True,  # k = n - 1 attains it on every instance
    proof="focus_conditions.topk_dispersion_separation",
    rtol=1e-12, atol=1e-12,
))


# ---------------------------------------------------------------------------------------------
# F3*: key mass and in-degrees


def _sample_square(key, sizes=((16, 128),)):
    rng = _rng(key)
    return [{"z": rng.normal(size=(c, n, n)) * _log_uniform(rng, 0.01, 5.0, (c, 1, 1))} for n, c in sizes]


def _full_mass(prm):
    from softmax_stability.maps import softmax

    return jnp.max(jnp.sum(softmax(prm["z"]), axis=0))


def _full_mass_bound(prm):
    F = _F()
    n = prm["z"].shape[-1]
    return F.key_mass_bound(jnp.max(F.dispersion(prm["z"])), n, n)


def _adversary_full_mass(key, ratio=None):
    # every query puts key 0 at +delta, the rest equal: column sum n e^d/(e^d + n - 1) -> e^d as d -> 0
    n = 64
    z = np.zeros((4, n, n))
    for i, d in enumerate((1e-3, 0.01, 0.05, 0.2)):
        z[i, :, 0] = d
    return [{"z": z}]


register(Claim(
    id="F3-key-mass-full",
    family=FAMILY,
    statement=r"\max_j \sum_i P_{ij} \le e^{\delta_s}\ (n\text{ queries},\ n\text{ keys, full softmax})",
    source="derived here (semantic_focus.md §2.4 O2): each weight <= e^delta / n",
    kind="upper",
    bound=_full_mass_bound,
    measure=_full_mass,
    sample=_sample_square,
    adversary=_adversary_full_mass,
    sharp=True,
    proof=None,
    numeric_only_reason="sum of n per-entry bounds of D1 (proved there); checked numerically",
    rtol=1e-12,
))


def _sample_topk_mass(key):
    rng = _rng(key)
    out = []
    for n, k, c in ((8, 2, 128),):
        z = rng.normal(size=(c, n, n)) * _log_uniform(rng, 0.01, 5.0, (c, 1, 1))
        # a shared "sink" key for part of the batch, so some in-degrees are large
        z[: c // 2, :, 0] += _log_uniform(rng, 0.1, 10.0, (c // 2, 1))
        out.append({"z": z, "kdim": np.zeros((c, k))})
    return out


def _topk_mass_per_query(prm):
    """max_j (sum_i P_ij) / beta_j over keys selected at least once."""
    from softmax_stability.maps import topk_softmax

    F = _F()
    k = prm["kdim"].shape[-1]
    col = jnp.sum(topk_softmax(prm["z"], k), axis=0)
    beta = F.topk_in_degree(prm["z"], k)
    return jnp.max(jnp.where(beta > 0, col / jnp.maximum(beta, 1), 0.0))


def _adversary_topk_mass(key, ratio=None):
    # every query selects keys {0..k-1} with (nearly) equal logits: each gets ~1/k = e^0 / k
    rng = _rng(key)
    n, k, c = 8, 2, 128
    z = np.full((c, n, n), -3.0) - rng.random((c, n, n))
    z[:, :, :k] = _log_uniform(rng, 1e-9, 1e-3, (c, 1, k))
    return [{"z": z, "kdim": np.zeros((c, k))}]


register(Claim(
    id="F3b-key-mass-topk",
    family=FAMILY,
    statement=r"\sum_i P^{(k)}_{ij} \le \beta_j e^{\delta_h}/k\ \text{(top-k; } \beta_j \text{ = in-degree)}",
    source="derived here (semantic_focus.md §2.4 O2); the SF 'sink' cost beta_bar = beta/k",
    kind="upper",
    bound=lambda prm: _F().key_mass_bound(
        jnp.max(_F().dispersion(prm["z"], prm["kdim"].shape[-1])), 1.0, prm["kdim"].shape[-1]),
    measure=_topk_mass_per_query,
    sample=_sample_topk_mass,
    adversary=_adversary_topk_mass,
    sharp=True,
    proof=None,
    numeric_only_reason="per-entry bound of D1 on the k selected keys, summed over the beta_j "
                        "selecting queries; checked numerically",
    rtol=1e-12,
))


def _shape_batches(cases):
    return [{"ndim": np.zeros((1, n)), "kdim": np.zeros((1, k)), "gdim": np.zeros((1, g))}
            for n, k, g in cases]


def _block_dev(prm):
    from softmax_stability.masks import block_mask

    n, k = prm["ndim"].shape[-1], prm["kdim"].shape[-1]
    return jnp.max(jnp.abs(_F().in_degree(block_mask(n, k)) - k)).astype(float)


register(Claim(
    id="F3c-block-in-degree",
    family=FAMILY,
    statement=r"\text{BLOC}(k),\ k \mid n:\ \beta_j = k\ \forall j\ (\bar\beta = 1)",
    source="SF BLOC(k) (semantic_focus.md §1.3, §2.3); measured on masks.block_mask",
    kind="equal",
    bound=lambda prm: 0.0,
    measure=_block_dev,
    sample=lambda key: _shape_batches([(12, 3, 0), (40, 5, 0), (45, 9, 0), (16, 16, 0), (7, 1, 0)]),
    proof=None,
    numeric_only_reason="a counting identity on a finite mask; checked exactly for each size",
    atol=0.0, rtol=0.0,
))


def _band_dev(prm):
    from softmax_stability.masks import band_mask

    F = _F()
    n, k, g = prm["ndim"].shape[-1], prm["kdim"].shape[-1], prm["gdim"].shape[-1]
    rule = jnp.asarray(F.band_in_degree(n, k, global_tokens=g))
    return jnp.max(jnp.abs(F.in_degree(band_mask(n, k, global_tokens=g)) - rule)).astype(float)


register(Claim(
    id="F3d-band-in-degree",
    family=FAMILY,
    statement=r"\text{BAND}(k):\ \beta_j = \sum_{s=\max(0,j-k+1)}^{\min(j,n-k)} c_s"
              r"\ (k \text{ in the interior; } 3,4,5,6,7,5,\dots \text{ for } n=40, k=5)",
    source="SF authors' window edge rule (semantic_focus.md §1.3); closed form focus.band_in_degree "
           "against masks.band_mask",
    kind="equal",
    bound=lambda prm: 0.0,
    measure=_band_dev,
    sample=lambda key: _shape_batches([(40, 5, 0), (45, 9, 0), (12, 4, 1), (7, 7, 0), (9, 1, 0),
                                       (16, 6, 3), (10, 2, 0)]),
    proof=None,
    numeric_only_reason="a counting identity on a finite mask; checked exactly for each size",
    atol=0.0, rtol=0.0,
))


# ---------------------------------------------------------------------------------------------
# F4*: top-k local stability


def _sample_f4(key):
    rng = _rng(key)
    out = []
    for n, k, c in ((10, 1, 256), (10, 4, 256)):
        z = rng.normal(size=(c, n)) * _log_uniform(rng, 0.05, 10.0, (c, 1))
        srt = -np.sort(-z, axis=1)
        sep = srt[:, k - 1] - srt[:, k]
        e = rng.uniform(-1, 1, size=(c, n))
        e /= np.max(np.abs(e), axis=1, keepdims=True)
        e *= (sep * _log_uniform(rng, 0.01, 10.0, c))[:, None]  # both sides of Delta/2
        out.append({"z": z, "e": e, "kdim": np.zeros((c, k))})
    return out


def _f4_measure(prm):
    from softmax_stability.maps import topk_softmax

    k = prm["kdim"].shape[-1]
    return jnp.sum(jnp.abs(topk_softmax(prm["z"] + prm["e"], k) - topk_softmax(prm["z"], k)))


def _f4_bound(prm):
    F = _F()
    sep = F.separation(prm["z"], prm["kdim"].shape[-1])
    return F.topk_lipschitz_bound(sep) * jnp.max(jnp.abs(prm["e"]))


def _adversary_f4(key, ratio=None):
    """Both regimes attained (shapes as in the random batches, so nothing recompiles)."""
    rng = _rng(key)
    c, n = 256, 10
    # (a) k = 1, swap the top two with ||e|| just above Delta/2: ||change||_1 = 2 = (4/Delta)||e||
    delta = _log_uniform(rng, 1e-3, 3.9, c)
    z = np.concatenate([delta[:, None], np.zeros((c, 1)), -5.0 - rng.random((c, n - 2))], axis=1)
    h = 0.5 * delta * (1 + 1e-7)
    e = np.zeros((c, n))
    e[:, 0], e[:, 1] = -h, h
    a = {"z": z, "e": e, "kdim": np.zeros((c, 1))}
    # (b) smooth regime, k = 4: four equal top logits far above the rest and e = t(1, 1, -1, -1):
    # J e = e / 4, ||J e||_1 = t = ||e||_inf (||J||_{inf->1} = 4 p(S)(1 - p(S)) = 1 at p(S) = 1/2)
    z2 = np.concatenate([np.zeros((c, 4)), -20.0 + rng.random((c, n - 4))], axis=1)
    t = _log_uniform(rng, 1e-7, 1e-5, c)[:, None]
    e2 = np.concatenate([t, t, -t, -t, np.zeros((c, n - 4))], axis=1)
    b = {"z": z2, "e": e2, "kdim": np.zeros((c, 4))}
    return [a, b]


register(Claim(
    id="F4-topk-local-stability",
    family=FAMILY,
    statement=r"\|\xi_h(z+e) - \xi_h(z)\|_1 \le \max(1, 4/\Delta)\,\|e\|_\infty",
    source="derived here (semantic_focus.md §2.4 O6); focus.topk_lipschitz_bound",
    kind="upper",
    bound=_f4_bound,
    measure=_f4_measure,
    sample=_sample_f4,
    adversary=_adversary_f4,
    sharp=True,
    proof=None,
    numeric_only_reason="case split (set fixed for ||e|| < Delta/2, then ||J||_{inf->1} <= 1 "
                        "(claim J-family); else ||change||_1 <= 2); checked numerically",
    rtol=1e-9, atol=1e-15,
))


def _sample_f4b(key):
    rng = _rng(key)
    out = []
    for n, k, c in ((10, 3, 512),):
        z = rng.normal(size=(c, n)) * _log_uniform(rng, 0.05, 10.0, (c, 1))
        order = np.argsort(-z, axis=1)
        srt = np.take_along_axis(z, order, axis=1)
        half = 0.999 * 0.5 * (srt[:, k - 1] - srt[:, k])
        e = rng.choice([-1.0, 1.0], size=(c, n)) * half[:, None]
        # the worst direction for half of them: lower the k-th, raise the (k+1)-th
        w = np.zeros((c, n))
        rows = np.arange(c)
        w[rows, order[:, k - 1]] = -half
        w[rows, order[:, k]] = half
        e[: c // 2] = w[: c // 2]
        out.append({"z": z, "e": e, "kdim": np.zeros((c, k))})
    return out


def _f4b_measure(prm):
    from softmax_stability.masks import topk_mask

    k = prm["kdim"].shape[-1]
    return jnp.sum(topk_mask(prm["z"] + prm["e"], k) != topk_mask(prm["z"], k)).astype(float)


register(Claim(
    id="F4b-topk-set-unchanged",
    family=FAMILY,
    statement=r"\|e\|_\infty < \Delta/2 \Rightarrow T_k(z+e) = T_k(z)",
    source="derived here (semantic_focus.md §2.4 O6)",
    kind="equal",
    bound=lambda prm: 0.0,
    measure=_f4b_measure,
    sample=_sample_f4b,
    proof=None,
    numeric_only_reason="each selected logit stays above z_(k) - Delta/2 and each other below "
                        "z_(k+1) + Delta/2; checked at ||e|| = 0.999 Delta/2 including the worst direction",
    atol=0.0, rtol=0.0,
))


def _sample_f4c(key):
    rng = _rng(key)
    out = []
    for n, k in ((10, 3),):
        c = 64
        srt = -np.sort(-rng.normal(size=(c, n)) * 2.0, axis=1)
        srt[:, k] = srt[:, k - 1]  # tie between the k-th and (k+1)-th largest: Delta = 0
        perm = np.array([rng.permutation(n) for _ in range(c)])  # sorted slot j -> position perm[j]
        z = np.empty_like(srt)
        rows = np.arange(c)[:, None]
        z[rows, perm] = srt
        e = np.zeros((c, n))
        e[np.arange(c), perm[:, k - 1]] = 1e-9
        e[np.arange(c), perm[:, k]] = -1e-9
        out.append({"z": z, "e": e, "kdim": np.zeros((c, k))})
    return out


def _f4c_jump(prm):
    from softmax_stability.maps import topk_softmax

    k = prm["kdim"].shape[-1]
    return jnp.sum(jnp.abs(topk_softmax(prm["z"] + prm["e"], k) - topk_softmax(prm["z"] - prm["e"], k)))


def _f4c_tied_mass(prm):
    v = -jnp.sort(-prm["z"])[: prm["kdim"].shape[-1]]
    return 2.0 * jnp.exp(v[-1] - v[0]) / jnp.sum(jnp.exp(v - v[0]))


register(Claim(
    id="F4c-topk-tie-discontinuity",
    family=FAMILY,
    statement=r"\Delta(z) = 0:\ \|\xi_h(z + te) - \xi_h(z - te)\|_1 \to 2p_{(k)} \ne 0 \text{ as } t \to 0",
    source="derived here (semantic_focus.md §2.4 O6): the explicit tie example",
    kind="equal",
    bound=_f4c_tied_mass,
    measure=_f4c_jump,
    sample=_sample_f4c,
    proof=None,
    numeric_only_reason="explicit example: swapping which tied key is selected moves mass p_(k) "
                        "from one key to the other, for every t > 0",
    rtol=1e-6,  # O(t) = 1e-9 change of the weights; 1000x margin
))


# ---------------------------------------------------------------------------------------------
# F5, F6, F9: the comparison conditions


def _sample_conditions(key, count=512, ds_range=(0.05, 90.0)):
    rng = _rng(key)
    ds = _log_uniform(rng, *ds_range, count)
    return {
        "ds": ds,
        "dh": ds * rng.uniform(0, 1, count),
        "sep": _log_uniform(rng, 1e-9, 1e3, count),
        "bb": np.concatenate([rng.uniform(0, 150, count // 2), _log_uniform(rng, 1e-3, 10, count - count // 2)]),
    }


def _table6_batch():
    F = _F()
    rows = [(ds, dh, sp, b / F.SF_TABLE6_K) for t in F.SF_TABLE6.values()
            for ds, dh, sp, b in zip(t["delta_s"], t["delta_h"], t["sep"], t["beta"])]
    a = np.asarray(rows, dtype=float)
    return {"ds": a[:, 0], "dh": a[:, 1], "sep": a[:, 2], "bb": a[:, 3]}


register(Claim(
    id="F5-lhs304-exponential-form",
    family=FAMILY,
    statement=r"\mathrm{LHS}_{304} = 1 + \tfrac{1}{\delta_s}\ln\frac{2e^{\delta_h}(1+1/\Delta)}{e^{\delta_s}},"
              r"\ \text{so } \mathrm{LHS}_{304} < 1 \iff 2e^{\delta_h}(1+1/\Delta) < e^{\delta_s}",
    source="SF eq. (304) as computed in the authors' bounds.py (semantic_focus.md §2.2)",
    kind="equal",
    bound=lambda prm: 1.0 + jnp.log(_F().lambda_w_topk(prm["dh"], prm["sep"])
                                    / _F().lambda_w_full(prm["ds"])) / prm["ds"],
    measure=lambda prm: _F().lhs_304(prm["ds"], prm["dh"], prm["sep"]),
    sample=lambda key: [_sample_conditions(key), _table6_batch()],
    proof="focus_conditions.lhs304_equivalence",
    rtol=1e-10, atol=1e-10,  # exp/log round trip up to e^90: ~1e-14 absolute
))

register(Claim(
    id="F6-lhs305-exponential-form",
    family=FAMILY,
    statement=r"\mathrm{LHS}_{305} < 1 \iff e^{\delta_h}[\delta_s(1+\bar\beta)(1+1/\Delta)+\bar\beta]"
              r" < e^{\delta_s}(1+\delta_s)",
    source="SF eq. (305) as computed in the authors' bounds-lhs.py (semantic_focus.md §2.2)",
    kind="equal",
    bound=lambda prm: 1.0 + jnp.log(_F().lambda_x_topk(prm["dh"], prm["sep"], prm["bb"], prm["ds"])
                                    / _F().lambda_x_full(prm["ds"])) / prm["ds"],
    measure=lambda prm: _F().lhs_305(prm["ds"], prm["dh"], prm["sep"], prm["bb"]),
    sample=lambda key: [_sample_conditions(key), _table6_batch()],
    proof="focus_conditions.lhs305_equivalence",
    rtol=1e-10, atol=1e-10,
))


def _sample_f9(key):
    b = _sample_conditions(key, ds_range=(1e-3, _LN2))
    b["sep"] = _log_uniform(_rng(key), 1e-9, 1e9, b["ds"].size)
    return [b]


def _adversary_f9(key, ratio=None):
    return [{"ds": np.array([_LN2, _LN2, 0.999 * _LN2]), "dh": np.zeros(3),
             "sep": np.array([1e12, 1e6, 1e12]), "bb": np.zeros(3)}]


register(Claim(
    id="F9-lhs304-infeasible-ln2",
    family=FAMILY,
    statement=r"\delta_s \le \ln 2 \Rightarrow \mathrm{LHS}_{304} \ge 1\ \text{(condition (304) never holds)}",
    source="derived here (semantic_focus.md §2.2): LHS_304 > ln(2)/delta_s >= 1",
    kind="lower",
    bound=lambda prm: 1.0,
    measure=lambda prm: _F().lhs_304(prm["ds"], prm["dh"], prm["sep"]),
    sample=_sample_f9,
    adversary=_adversary_f9,
    sharp=True,  # delta_s = ln 2, delta_h = 0, Delta -> inf
    proof="focus_conditions.lhs304_infeasible_small_dispersion",
    rtol=1e-12,
))


# ---------------------------------------------------------------------------------------------
# F7, F8: closed-form region boundaries vs the authors' grid search

_GRID = 1e-3
_CAP = 2.0  # both sides capped: an empty region (+inf) must match "no grid point" (+inf)
_FIG_DS = (0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 8.0, 16.0, 32.0)
_FIG_BETA = (1, 2, 4, 8, 16, 32)


def _sample_boundary(key, which):
    F = _F()
    rng = _rng(key)
    m = 4096
    ds = np.concatenate([rng.choice(_FIG_DS, m // 2), _log_uniform(rng, 0.1, 40.0, m - m // 2)])
    c1 = rng.uniform(0, 1, m)
    beta = np.concatenate([rng.choice(_FIG_BETA, m // 2), rng.uniform(0, 40, m - m // 2)])
    closed = np.asarray(F.c2_min_w(c1, ds) if which == "w" else F.c2_min_x(c1, ds, beta))
    # the grid cannot resolve boundaries in (1 - 2 precision, inf): it has no point there
    keep = (closed <= 1 - 2 * _GRID) | np.isinf(closed)
    keep &= np.cumsum(keep) <= 512
    return [{"c1": c1[keep], "ds": ds[keep], "beta": beta[keep]}]


def _grid_error(prm, which):
    """|grid search - closed form|, both capped at 2 (empty region: +inf on both sides -> 0)."""
    F = _F()
    if which == "w":
        closed = F.c2_min_w(prm["c1"], prm["ds"])
        grid = F.c2_min_grid("w", prm["c1"], prm["ds"], precision=_GRID)
    else:
        closed = F.c2_min_x(prm["c1"], prm["ds"], prm["beta"])
        grid = F.c2_min_grid("x", prm["c1"], prm["ds"], prm["beta"], precision=_GRID)
    return jnp.abs(jnp.minimum(grid, _CAP) - jnp.minimum(closed, _CAP))


register(Claim(
    id="F7-c2min-w-closed-form",
    family=FAMILY,
    statement=r"|c_2^{\mathrm{grid}} - c_2^{\min,W}(c_1)| \le h,\ "
              r"c_2^{\min,W}(c_1) = 1/\big(\delta_s(\tfrac12 e^{\delta_s(1-c_1)} - 1)\big)\ (h = 10^{-3})",
    source="derived here (semantic_focus.md §2.2 [OURS]); grid search of SF bounds.py (Fig. 21)",
    kind="upper",
    bound=lambda prm: _GRID,
    measure=lambda prm: _grid_error(prm, "w"),
    sample=lambda key: _sample_boundary(key, "w"),
    proof="focus_conditions.c2min_w",
    rtol=1e-6,  # the grid value lies in (c2min, c2min + h]; 1e-6 h covers rounding at a grid point
))

register(Claim(
    id="F8-c2min-x-closed-form",
    family=FAMILY,
    statement=r"|c_2^{\mathrm{grid}} - c_2^{\min,X}(c_1)| \le h,\ c_2^{\min,X}(c_1) = (1+\beta)/"
              r"\big((1+\delta_s)e^{\delta_s(1-c_1)} - \beta - \delta_s(1+\beta)\big)",
    source="derived here (semantic_focus.md §2.2 [OURS]); grid search of SF bounds.py --xcomp (Fig. 22)",
    kind="upper",
    bound=lambda prm: _GRID,
    measure=lambda prm: _grid_error(prm, "x"),
    sample=lambda key: _sample_boundary(key, "x"),
    proof="focus_conditions.c2min_x",
    rtol=1e-6,
))


# ---------------------------------------------------------------------------------------------
# F10*: measured stability of the attention matrix vs the constants derived in focus

_N, _D = 8, 4


def stability_instances(key, count, n=_N, d=_D, *, gamma=(0.25, 8.0), sink=(0.0, 3.0)):
    """``count`` token sets from :func:`focus.random_attention_instance` with log-uniform
    ``gamma`` (controls the dispersion) and uniform ``sink`` (controls the in-degree).

    Returns NumPy arrays ``X (count, n, d)``, ``W (count, d, d)`` and the parameters
    ``gamma (count,)``, ``sink (count,)``."""
    rng = _rng(key) if not isinstance(key, np.random.Generator) else key
    g = _log_uniform(rng, *gamma, count)
    s = rng.uniform(*sink, count)
    X, W = _F().random_attention_instance(rng, n, d, gamma=g, sink=s, count=count)
    return X, W, g, s


def _sample_f10(key, ks=(2, _N), count=32):
    out = []
    for i, k in enumerate(ks):
        X, W, _, _ = stability_instances(jax.random.fold_in(key, i), count)
        out.append({"X": X, "W": W, "kdim": np.zeros((count, k))})
    return out


def _stats(prm):
    F = _F()
    X, W = prm["X"], prm["W"]
    n, k = X.shape[0], prm["kdim"].shape[-1]
    A = X @ W @ X.T
    delta = jnp.max(F.dispersion(A, None if k >= n else k))
    return F, X, W, n, k, A, delta


def _f10_bound(prm):
    F, X, _, n, k, _, delta = _stats(prm)
    return F.derived_lambda_w(delta, k, n, F.max_token_norm(X))


def _f10b_bound(prm):
    F, X, W, n, k, A, delta = _stats(prm)
    beta_max = jnp.max(F.topk_in_degree(A, k)) if k < n else n
    return F.derived_lambda_x(delta, k, beta_max, jnp.linalg.norm(W, 2), F.max_token_norm(X))


register(Claim(
    id="F10-measured-stability-w",
    family=FAMILY,
    statement=r"\|\partial P/\partial W\|_{F\to F} \le \sqrt{nm}\,\Xi^2\min(\tfrac12, \pi(\delta, m)),"
              r"\ \pi(\delta,m) = e^{\delta}/(e^{\delta}+m-1)",
    source="derived here (focus.derived_lambda_w); NOT the SF theorem (its prefactor and norm are "
           "unavailable) -- the analogue of lambda_W(xi_s) ~ e^{delta_s}, lambda_W(xi_h) ~ e^{delta_h}",
    kind="upper",
    bound=_f10_bound,
    measure=lambda prm: _F().local_stability(prm["X"], prm["W"], prm["kdim"].shape[-1], wrt="W"),
    sample=_sample_f10,
    proof=None,
    numeric_only_reason="composition of the softmax Jacobian bound 0 <= J <= diag(p) with the "
                        "pmax bound (D2) and Cauchy-Schwarz; checked against autodiff",
    rtol=1e-9,
))

register(Claim(
    id="F10b-measured-stability-x",
    family=FAMILY,
    statement=r"\|\partial P/\partial X\|_{F\to F} \le \Gamma\Xi(\sqrt m + \sqrt{\beta_{\max}})"
              r"\min(\tfrac12, \pi(\delta, m))",
    source="derived here (focus.derived_lambda_x); NOT the SF theorem -- the analogue of "
           "lambda_X with the in-degree cost (1 + beta_bar)",
    kind="upper",
    bound=_f10b_bound,
    measure=lambda prm: _F().local_stability(prm["X"], prm["W"], prm["kdim"].shape[-1], wrt="X"),
    sample=_sample_f10,
    proof=None,
    numeric_only_reason="as F10, plus sum_i ||E_{S_i}||_F^2 = sum_j beta_j ||e_j||^2; checked "
                        "against autodiff",
    rtol=1e-9,
))


def _sample_f10c(key, ks=(3, _N), count=64):
    """Random and targeted directions (lower the k-th logit of the least separated query and
    raise its (k+1)-th: the selection flips at the smallest radius) at radii on both sides of Delta."""
    rng = _rng(key)
    out = []
    for i, k in enumerate(ks):
        X, W, _, _ = stability_instances(jax.random.fold_in(key, i), count)
        D = rng.normal(size=W.shape)
        D /= np.linalg.norm(D, ord=2, axis=(1, 2))[:, None, None]
        for t in range(count // 2 if k < _N else 0):
            D[t] = _F().selection_flip_direction(X[t], W[t], k)
        r = _log_uniform(rng, 1e-4, 1.0, count)
        out.append({"X": X, "W": W, "D": D, "r": r, "kdim": np.zeros((count, k))})
    return out


def _f10c_measure(prm):
    return _F().finite_stability_w(prm["X"], prm["W"], prm["D"], prm["r"], prm["kdim"].shape[-1])


def _f10c_bound(prm):
    F, X, W, n, k, A, delta = _stats(prm)
    sep = jnp.min(F.separation(A, k))  # +inf for k = n
    r = prm["r"] * jnp.linalg.norm(prm["D"], 2)
    return F.derived_lambda_w(delta, k, n, F.max_token_norm(X), sep=sep, radius=r)


register(Claim(
    id="F10c-finite-stability-w",
    family=FAMILY,
    statement=r"\|P(W') - P(W)\|_F \le \sqrt n\,\Xi^2\max\big(\sqrt m\min(\tfrac12, \pi(\delta + 2\Xi^2 r, m)),"
              r"\ 2\sqrt2/\Delta\big)\,\|W'-W\|_2,\ r = \|W' - W\|_2",
    source="derived here (focus.derived_lambda_w with sep, radius); the 1/Delta selection cost of "
           "SF's 2 e^{delta_h}(1 + 1/Delta), with this library's prefactor; NOT the SF theorem",
    kind="upper",
    bound=_f10c_bound,
    measure=_f10c_measure,
    sample=_sample_f10c,
    proof=None,
    numeric_only_reason="mean value theorem on segments where the selection is fixed (O6) and "
                        "||p - q||_2 <= sqrt 2 otherwise; checked by evaluating the map",
    rtol=1e-9,
))
