r"""Sorted causal attention profiles of a random-weight layer: the experiment behind the figure
``ssa_sorted_attention``.

In the style of the SSA authors' attention statistics (official code ``finetune/draw_att.py`` and
``sorted_att_buffer``, docs/notes/selective_attention.md §1.7 and §3, [CODE]), reconstructed on a
synthetic model, not the SSA paper's LLM (which model, layer and data it used were not recovered):

* tokens: i.i.d. draws from a Zipf(1) distribution over a vocabulary of 64; embeddings: random unit
  vectors in :math:`\mathbb R^{64}`; no positional encoding, so rows differ only in how many keys
  they see;
* 4 heads of width :math:`d_h = 16`, tied random projections :math:`W_q = W_k`, scaled so that the
  logits between distinct tokens have standard deviation 1 (:func:`layer_weights`);
* the weights are :func:`softmax_stability.maps.softmax` of the temperature-scaled logits under
  :func:`softmax_stability.masks.causal_mask` (float64, :func:`attention_weights`), cross-checked
  against :func:`softmax_stability.attention.dot_product_attention`
  (:func:`check_against_attention_module`).

:func:`sorted_attention_statistics` averages, over sequences and heads, every query row's sorted
profile (:func:`softmax_stability.dilution.sorted_profile`) and its top-5 % mass, normalised entropy
and max weight, for vanilla attention and the SSA position temperature
:math:`\tau_i = 1 + \sigma(0)\ln(i+1)` (:func:`softmax_stability.temperature.ssa_temperature`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["VOCAB", "D_MODEL", "HEADS", "HEAD_DIM", "ALPHA", "ZIPF_S", "TOP_FRACTION", "layer_weights",
           "model_inputs", "attention_weights", "check_against_attention_module",
           "sorted_attention_statistics"]

VOCAB = 64
D_MODEL = 64
HEADS = 4
HEAD_DIM = 16
ALPHA = 0.0
ZIPF_S = 1.0
TOP_FRACTION = 0.05


def layer_weights(key):
    """Embeddings [V, D] (unit rows), tied query/key projection [D, N, H] and value projection.

    The query/key projection is scaled so that the logits between distinct vocabulary tokens have
    standard deviation 1 (pooled over heads); logits are quadratic in it (tied), hence the sqrt."""
    import jax
    import jax.numpy as jnp

    _, k_emb, k_w, k_v = jax.random.split(key, 4)
    emb = jax.random.normal(k_emb, (VOCAB, D_MODEL), jnp.float64)
    emb = emb / jnp.linalg.norm(emb, axis=-1, keepdims=True)
    w = jax.random.normal(k_w, (D_MODEL, HEADS, HEAD_DIM), jnp.float64)
    proj = jnp.einsum("vd,dnh->vnh", emb, w)
    lg = jnp.einsum("vnh,unh->nvu", proj, proj) / np.sqrt(HEAD_DIM)
    off = ~np.eye(VOCAB, dtype=bool)
    w = w / jnp.sqrt(jnp.std(lg[:, off]))
    wv = jax.random.normal(k_v, (D_MODEL, HEADS, HEAD_DIM), jnp.float64) / np.sqrt(D_MODEL)
    return emb, w, wv


def model_inputs(key, T: int, B: int, token_key=None):
    """Tokens, queries, keys and values of the random causal layer (float64).

    ``key`` fixes the model (:func:`layer_weights`), ``token_key`` (default: from ``key``) the
    token sequences. Returns (tokens [B, T], q [B, T, N, H], k [B, T, N, H], v [B, T, N, H])."""
    import jax
    import jax.numpy as jnp

    k_tok = jax.random.split(key, 4)[0] if token_key is None else token_key
    probs = 1.0 / np.arange(1, VOCAB + 1) ** ZIPF_S
    tokens = jax.random.choice(k_tok, VOCAB, (B, T), p=jnp.asarray(probs / probs.sum()))
    emb, w, wv = layer_weights(key)
    x = emb[tokens]  # [B, T, D]
    q = jnp.einsum("btd,dnh->btnh", x, w)
    v = jnp.einsum("btd,dnh->btnh", x, wv)
    return tokens, q, q, v  # tied W_q = W_k


def attention_weights(q, k, tau):
    """Causal softmax of the logits q.k / sqrt(d_h) scaled per query by ``tau`` [T]: [B, N, T, T]."""
    import jax.numpy as jnp

    from softmax_stability.maps import softmax
    from softmax_stability.masks import causal_mask

    T = q.shape[1]
    logits = jnp.einsum("btnh,bsnh->bnts", q, k) / np.sqrt(q.shape[-1])
    return softmax(logits, beta=jnp.asarray(tau)[None, None, :, None], where=causal_mask(T))


def check_against_attention_module(q, k, v, tau, P) -> dict:
    """Compare P @ v with softmax_stability.attention.dot_product_attention (if importable)."""
    import jax.numpy as jnp

    try:
        from softmax_stability.attention import dot_product_attention
    except Exception as err:  # module missing or broken: the figure does not depend on it
        return {"status": f"unavailable ({type(err).__name__}: {err})"}
    B, T, N, _ = q.shape
    tq = jnp.broadcast_to(jnp.asarray(tau)[None, :, None], (B, T, N))
    out = dot_product_attention(q, k, v, causal=True, query_temperature=tq)
    ref = jnp.einsum("bnts,bsnh->btnh", P, v)
    diff = float(jnp.max(jnp.abs(out - ref)))
    return {"status": "ok" if diff < 1e-9 else "MISMATCH", "max_abs_diff": diff,
            "function": "softmax_stability.attention.dot_product_attention(causal=True, query_temperature=tau)"}


def sorted_attention_statistics(key, T: int, B: int, chunks: int, *, progress: bool = True) -> dict:
    """Mean sorted profiles and per-position statistics, vanilla vs the SSA position temperature.

    One model (weights from ``key``) for every chunk; each chunk draws ``B`` new token sequences of
    length ``T``. Statistics are averaged over sequences, heads and chunks.

    Args:
        key: PRNG key of the model and the token sequences.
        T: sequence length; B: sequences per chunk; chunks: number of chunks.
        progress: a ``tqdm`` bar over chunks (hidden when stderr is not a terminal).

    Returns:
        dict ``profiles`` ({"vanilla", "ssa"}: [T, T] mean sorted row, row t has t+1 entries),
        ``stats`` ({"vanilla", "ssa"}: {"top_fraction_mass", "normalized_entropy", "max_weight"}: [T]),
        ``checks`` ({"vanilla", "ssa"}: :func:`check_against_attention_module` on the first chunk).
    """
    import jax
    import jax.numpy as jnp
    from tqdm.auto import tqdm

    from softmax_stability import dilution as D
    from softmax_stability import temperature as Tm
    from softmax_stability.masks import causal_mask

    n_vis = jnp.arange(1, T + 1, dtype=jnp.float64)
    taus = {"vanilla": jnp.ones(T, jnp.float64),
            "ssa": Tm.ssa_temperature(n_vis, ALPHA, parametrisation="sigmoid")}
    mask = causal_mask(T)
    profiles = {name: np.zeros((T, T)) for name in taus}
    stats = {name: {s: np.zeros(T) for s in ("top_fraction_mass", "normalized_entropy", "max_weight")}
             for name in taus}
    checks = {name: [] for name in taus}
    # the same model (weights, embeddings) for every chunk: only the token sequences change
    model_key, tok_key = jax.random.split(key)
    for c in tqdm(range(chunks), desc="sequence chunks", leave=False, disable=None if progress else True):
        _, q, k, v = model_inputs(model_key, T, B, jax.random.fold_in(tok_key, c))
        for name, tau in taus.items():
            P = attention_weights(q, k, tau)
            if c == 0:
                checks[name] = check_against_attention_module(q, k, v, tau, P)
            profiles[name] += np.asarray(D.sorted_profile(P, where=mask)) / chunks
            st = stats[name]
            st["top_fraction_mass"] += np.asarray(jnp.mean(D.top_fraction_mass(P, TOP_FRACTION, where=mask), axis=(0, 1))) / chunks
            st["normalized_entropy"] += np.asarray(jnp.mean(D.normalized_entropy(P, where=mask), axis=(0, 1))) / chunks
            st["max_weight"] += np.asarray(jnp.mean(D.max_weight(P, where=mask), axis=(0, 1))) / chunks
            del P
    return {"profiles": profiles, "stats": stats, "checks": checks}
