r"""Lipschitz constants of attention layers: the Castin-Ablin-Peyre bound, the measured local
constant, and the adversarial inputs on which it grows like :math:`\sqrt n`.

* :func:`castin_bound` -- the data-dependent multi-head bound of Castin, Ablin & Peyre (ICML 2024,
  arXiv:2312.14820) exactly as their public code computes it (``compute_bound`` in
  ``github:vcastin/how-smooth-is-attention``, ``adversarial_data/toolbox.py``; docs/notes/field.md §2.2 [V]).
  Finding: with the code's one-sided :math:`R_h` it is **not** a bound for non-symmetric
  :math:`A_h` (explicit counterexample in its docstring); ``side="max"`` held in every test.
* :func:`derived_bound` -- a proved (derived here) data-dependent bound of the same shape,
  :math:`\sum_h\|V_h\|((1 + rR^q_h)\sqrt n + rR^k_h)`.
* :func:`measured_lipschitz` -- the local Lipschitz constant :math:`\|J_f(X)\|_2` of a layer at an
  input, by power iteration on :math:`J^\top J` with ``jvp``/``vjp``
  (:func:`softmax_stability.empirical.power_iteration_norm`). This is what the same code's
  ``loc_lipschitz`` intends; as published that function iterates on :math:`J^\top f(X)` instead and
  returns :math:`\sqrt{\|J^\top f(X)\|_2}`, not :math:`\|J_f(X)\|_2` (details in
  :func:`measured_lipschitz`).
* :func:`attention_layer` -- the layer variants compared here (full, top-k, band, block, SSA) as
  functions of the tokens, built on :mod:`softmax_stability.attention`.
* :func:`adversarial_tokens`, :func:`adversarial_lower_bound` -- their adversarial input (one token
  at :math:`aRu`, the others at :math:`bRu`) and a closed-form lower bound on the local constant
  there, derived here, which grows like :math:`\sqrt{n-1}`.

**Conventions.** Tokens are the rows :math:`x_i\in\mathbb R^d` of ``x`` (``[T, d]``). Head
:math:`h` of :func:`softmax_stability.attention.multi_head_attention` has logits
:math:`\ell_{ij} = x_i^\top A_h x_j` with :math:`A_h = s\,W_{Q,h}W_{K,h}^\top`
(``s = scale``, default :math:`1/\sqrt{d_h}`; ``W_{Q,h} = params["wq"][:, h, :]``) and value map
:math:`x \mapsto x^\top V_h`, :math:`V_h = W_{V,h}` (times :math:`W_{O,h}` when the output
projection is included). Norms are Euclidean / spectral; the Jacobian is that of the flattened
output with respect to the flattened tokens.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from softmax_stability import attention as _attn
from softmax_stability import masks as _masks
from softmax_stability._checks import (
    as_float_array,
    check_choice,
    check_int_in_range,
    check_positive_finite,
    is_concrete,
)
from softmax_stability.empirical import PowerIterationResult, power_iteration_norm

__all__ = [
    "VARIANTS",
    "head_matrices",
    "token_diameter",
    "castin_bound",
    "derived_bound",
    "measured_lipschitz",
    "attention_layer",
    "adversarial_direction",
    "adversarial_tokens",
    "adversarial_lower_bound",
]

VARIANTS = ("full", "topk", "band", "block", "ssa")
_SIDES = ("query", "key", "max")
_METHODS = ("symmetric", "castin")


def _check_params(params: Mapping[str, Any], d: int | None = None) -> tuple[int, int, int]:
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict of arrays (see init_attention_params), got "
                        f"{type(params).__name__}")
    for name in ("wq", "wk", "wv"):
        if name not in params:
            raise ValueError(f"params is missing {name!r} (see init_attention_params)")
    shape = np.shape(params["wq"])
    if len(shape) != 3:
        raise ValueError(f"params['wq'] must have shape [d, heads, head_dim], got {shape}")
    for name in ("wk", "wv"):
        if np.shape(params[name]) != shape:
            raise ValueError(f"params[{name!r}] must have shape {shape}, got {np.shape(params[name])}")
    if d is not None and shape[0] != d:
        raise ValueError(f"x has width {d} but params['wq'] expects {shape[0]}")
    return shape


def head_matrices(params: Mapping[str, Any], *, scale: float | None = None,
                  include_output: bool | None = None) -> tuple[jax.Array, jax.Array]:
    r"""Per-head logit matrices :math:`A_h` and value maps :math:`V_h` of an attention layer.

    .. math::
        A_h = s\, W_{Q,h} W_{K,h}^\top \in \mathbb R^{d\times d},\qquad
        V_h = W_{V,h}\ (\text{or } W_{V,h}W_{O,h}) \in \mathbb R^{d\times d_{out}},

    so that head :math:`h` has logits :math:`\ell_{ij} = x_i^\top A_h x_j` and output
    :math:`\sum_j P_{ij}\, V_h^\top x_j` (biases aside).

    Args:
      params: dict with ``wq, wk, wv`` ``[d, N, H]`` and optionally ``wo`` ``[N, H, d_out]``
        (:func:`softmax_stability.attention.init_attention_params`).
      scale: logit scale :math:`s > 0`; default :math:`1/\sqrt H`, as in the layer.
      include_output: multiply :math:`V_h` by the output projection ``wo[h]``; default: when
        ``params`` has ``wo``.

    Returns:
      ``(A, V)`` of shapes ``[N, d, d]`` and ``[N, d, H]`` (or ``[N, d, d_out]``).

    Example:
      >>> import jax.numpy as jnp
      >>> p = {"wq": jnp.ones((2, 1, 1)), "wk": jnp.ones((2, 1, 1)), "wv": jnp.ones((2, 1, 1))}
      >>> A, V = head_matrices(p)
      >>> A.shape, V.shape, float(A[0, 0, 1])
      ((1, 2, 2), (1, 2, 1), 1.0)
    """
    d, N, H = _check_params(params)
    if scale is None:
        scale = 1.0 / math.sqrt(H)
    else:
        check_positive_finite(scale, "scale")
    wq, wk, wv = (as_float_array(params[n], f"params[{n!r}]") for n in ("wq", "wk", "wv"))
    A = jnp.einsum("dnh,enh->nde", wq, wk) * scale
    V = jnp.transpose(wv, (1, 0, 2))  # [N, d, H]
    if include_output is None:
        include_output = "wo" in params
    if include_output:
        if "wo" not in params:
            raise ValueError("include_output=True but params has no 'wo'")
        wo = as_float_array(params["wo"], "params['wo']")
        if np.shape(wo)[:2] != (N, H) or np.ndim(wo) != 3:
            raise ValueError(f"params['wo'] must have shape [{N}, {H}, d_out], got {np.shape(wo)}")
        V = jnp.einsum("ndh,nhe->nde", V, wo)
    return A, V


def token_diameter(x) -> jax.Array:
    r"""Diameter :math:`r = \max_{i,j}\|x_i - x_j\|_2` of a set of tokens (rows of ``x``).

    Computed row by row from the differences themselves (no Gram-matrix cancellation), in
    :math:`O(T^2 d)` time and :math:`O(T d)` memory per row block.

    Args:
      x: tokens ``[T, d]``.

    Returns:
      Scalar :math:`r \ge 0`.

    Example:
      >>> float(token_diameter([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0]]))
      5.0
    """
    x = as_float_array(x, "x")
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"x must have shape [T, d] with T >= 1, got {x.shape}")
    T = x.shape[0]

    def row(xi):
        return jnp.max(jnp.sum((x - xi) ** 2, axis=-1))

    r2 = jax.lax.map(row, x, batch_size=min(T, 128))
    return jnp.sqrt(jnp.max(r2))


def castin_bound(params: Mapping[str, Any], x, *, scale: float | None = None,
                 side: str = "query", include_output: bool | None = None) -> jax.Array:
    r"""Data-dependent upper bound on the local Lipschitz constant of multi-head attention
    (Castin, Ablin & Peyre 2024, as their public code computes it).

    .. math::
        \mathrm{Lip}_X(f) \;\le\; \sum_{h=1}^{N} \|V_h\|_2\,\sqrt{R_h^2\, r^2\,(n+1) + n},
        \qquad r = \max_{i,j}\|x_i - x_j\|_2,\quad R_h = \max_i \|A_h^\top x_i\|_2 ,

    with :math:`n` the number of tokens and :math:`A_h, V_h` from :func:`head_matrices`.

    Exactly the quantities of ``compute_bound`` in ``github:vcastin/how-smooth-is-attention``
    (``adversarial_data/toolbox.py``, read in source, docs/notes/field.md §2.2 [V]):

    * :math:`r` is the token **diameter** (max pairwise distance; not a radius);
    * their ``A_h = K_h^\top Q_h/\sqrt{d_h}`` with PyTorch ``Linear`` weights is
      :math:`A_h^\top` in this module's convention (:math:`\ell_{ij} = x_i^\top A_h x_j`), so
      their :math:`R_h` is the largest norm of a *query* token mapped through
      :math:`A_h^\top` (``side="query"``, the default). ``side="key"`` uses
      :math:`\max_i\|A_h x_i\|` (the formula as written in the project brief) and ``side="max"``
      the larger of the two; for symmetric :math:`A_h` all three agree;
    * :math:`\|V_h\|_2` is the spectral norm of the head's value weight; their code has **no
      output projection** (BERT's self-attention block has none). Here the output projection is
      included when ``params`` has ``wo`` (``include_output=None``), as :math:`V_h W_{O,h}`, which
      bounds the layer with ``wo`` by the same argument; pass ``include_output=False`` for the
      code's literal value (then it bounds only the layer without ``wo``);
    * biases are ignored by their code. A value or output bias does not change the Jacobian; a
      query bias does, so a (concrete) non-zero ``params["bq"]`` raises ``ValueError``;
    * :math:`n` is the number of tokens, also for masked layers (a mask only removes terms).

    The paper's theorem constant (:math:`\sqrt3\,\|V\|_2(\|A\|_2^2R^4(4n+1)+n)^{1/2}` on
    :math:`B(0,R)^n`, docs/notes/field.md §2.2 [R]) is **unconfirmed** (recalled, the paper text was not
    available) and is not what this function computes. The data-dependent code bound has no
    published proof in the available material.

    **Finding (checked here): with one side only the bound fails for non-symmetric** :math:`A_h`.
    With :math:`A = c\,e_2e_1^\top` and tokens :math:`(\pm S, 0)`, :math:`R^{query} = 0` so the
    code's value is :math:`\sqrt n\,\|V\|_2`, while perturbing the queries' second coordinate
    gives :math:`\|J\|_2 \ge cS^2`; the transposed example breaks ``side="key"``
    (``tests/test_lipschitz.py``). Use ``side="max"`` (claim ``L1-castin-bound``: it held on every
    random and adversarial instance tried) or the proved :func:`derived_bound`. For symmetric
    :math:`A_h` (e.g. tied query/key weights) the sides agree.

    Args:
      params: attention parameters (``wq, wk, wv`` ``[d, N, H]``, optional ``wo``, biases).
      x: tokens ``[T, d]`` or a batch ``[B, T, d]`` (one bound per sequence).
      scale: logit scale of the layer (default :math:`1/\sqrt H`).
      side: ``"query"`` (their code), ``"key"`` or ``"max"`` -- which :math:`R_h` (above).
      include_output: see above.

    Returns:
      The bound: a scalar, or ``[B]`` for batched ``x``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> p = {"wq": jnp.ones((1, 1, 1)), "wk": jnp.ones((1, 1, 1)), "wv": 2 * jnp.ones((1, 1, 1))}
      >>> x = jnp.array([[0.0], [1.0], [3.0]])     # r = 3, R = 3, n = 3
      >>> round(float(castin_bound(p, x)), 6)      # 2 * sqrt(9 * 9 * 4 + 3)
      36.166283
    """
    check_choice(side, "side", _SIDES)

    def one(terms):
        v_norm, r, rq, rk, n = terms
        R = {"query": rq, "key": rk, "max": jnp.maximum(rq, rk)}[side]
        return jnp.sum(v_norm * jnp.sqrt(R**2 * r**2 * (n + 1) + n))

    return _per_sequence(params, x, scale, include_output, one)


def _per_sequence(params, x, scale, include_output, reduce):
    """Shared quantities of the bounds, per sequence: (||V_h||_2 [N], r, R_q [N], R_k [N], n)."""
    x = as_float_array(x, "x")
    if x.ndim not in (2, 3) or x.shape[-2] < 1:
        raise ValueError(f"x must have shape [T, d] or [B, T, d] with T >= 1, got {x.shape}")
    _check_params(params, x.shape[-1])
    if "bq" in params and is_concrete(params["bq"]) and np.any(np.asarray(params["bq"]) != 0):
        raise ValueError("the bounds do not cover a non-zero query bias params['bq'] "
                         "(it changes the logits' dependence on the keys); set it to zero")
    A, V = head_matrices(params, scale=scale, include_output=include_output)
    v_norm = jnp.linalg.norm(V, ord=2, axis=(-2, -1))  # spectral norm per head, [N]

    def one(xs):
        r = token_diameter(xs)
        rq = jnp.max(jnp.linalg.norm(jnp.einsum("nde,td->nte", A, xs), axis=-1), axis=-1)  # A^T x
        rk = jnp.max(jnp.linalg.norm(jnp.einsum("nde,te->ntd", A, xs), axis=-1), axis=-1)  # A x
        return reduce((v_norm, r, rq, rk, xs.shape[0]))

    return one(x) if x.ndim == 2 else jax.vmap(one)(x)


def derived_bound(params: Mapping[str, Any], x, *, scale: float | None = None,
                  include_output: bool | None = None) -> jax.Array:
    r"""A proved data-dependent upper bound on the local Lipschitz constant of multi-head softmax
    attention (derived here).

    .. math::
        \mathrm{Lip}_X(f) \le \sum_h \|V_h\|_2\Big(\big(1 + r\,R^{q}_h\big)\sqrt n
            + r\,R^{k}_h\Big),\qquad
        R^{q}_h = \max_i\|A_h^\top x_i\|,\quad R^{k}_h = \max_i\|A_h x_i\|,

    :math:`r` the token diameter. Proof: for one head,
    :math:`df_i = V^\top\big[\sum_j P_{ij}e_j + \sum_j P_{ij}(x_j - m_i)\,d\ell_{ij}\big]`
    with :math:`d\ell_{ij} = e_i^\top A x_j + x_i^\top A e_j` and :math:`m_i = \sum_j P_{ij}x_j`
    (the covariance form of the softmax derivative); :math:`\|x_j - m_i\| \le r` gives
    :math:`\|df_i\| \le \|V\|_2[(1 + rR^q)a_i + rR^k\|e_i\|]` with
    :math:`a_i = \sum_j P_{ij}\|e_j\|`, and :math:`\sum_i a_i^2 \le \sum_j(\sum_i P_{ij})\|e_j\|^2
    \le n\|E\|^2` (Jensen; column sums :math:`\le n`). Heads add (triangle inequality). It
    needs both :math:`R^q` and :math:`R^k`; :func:`castin_bound` with one side only fails for
    non-symmetric :math:`A_h`. Checked numerically by claim ``L1b-attention-derived-bound`` (no
    ``proofs_check`` entry). Conventions and arguments as in :func:`castin_bound`.

    Returns:
      The bound: a scalar, or ``[B]`` for batched ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> p = {"wq": jnp.ones((1, 1, 1)), "wk": jnp.ones((1, 1, 1)), "wv": 2 * jnp.ones((1, 1, 1))}
      >>> x = jnp.array([[0.0], [1.0], [3.0]])     # r = 3, R = 3, n = 3
      >>> round(float(derived_bound(p, x)), 6)     # 2 * ((1 + 9) sqrt(3) + 9)
      52.641016
    """

    def one(terms):
        v_norm, r, rq, rk, n = terms
        return jnp.sum(v_norm * ((1 + r * rq) * math.sqrt(n) + r * rk))

    return _per_sequence(params, x, scale, include_output, one)


def measured_lipschitz(layer_fn: Callable[[jax.Array], jax.Array], x, *, key: jax.Array | None = None,
                       v0=None, tol: float = 1e-10, max_iter: int = 1000) -> PowerIterationResult:
    r"""Local Lipschitz constant :math:`\|J_f(X)\|_2` of a layer at the input ``x``.

    The largest singular value of the Jacobian of ``layer_fn`` (flattened output w.r.t. flattened
    tokens) by power iteration on :math:`J^\top J`: each step takes :math:`w = Jv` (the *tangent*
    output of ``jax.jvp``), then :math:`J^\top w` by ``jax.vjp``, and normalises
    (:func:`softmax_stability.empirical.power_iteration_norm`). The estimate is :math:`\|Jv\|_2` for
    a unit :math:`v`, so it never exceeds the true value; check ``converged``. It equals the dense
    :math:`\|J\|_2` (``jax.jacfwd`` + SVD) up to the iteration's convergence:
    ``tests/test_lipschitz.py`` checks it within :math:`\mathrm{tol}\cdot\rho/(1-\rho)`,
    :math:`\rho = (\sigma_2/\sigma_1)^2`. Forward-mode AD must pass through the layer: use the XLA /
    ``"jnp"`` implementations (the cuDNN kernel is a ``custom_vjp``).

    **How this differs from the published code.** ``loc_lipschitz`` of Castin, Ablin & Peyre
    (``github:vcastin/how-smooth-is-attention``, ``adversarial_data/toolbox.py``) intends the same
    power iteration, but each step takes ``torch.func.jvp(attention, (Y,), (u,))[0]``; ``jvp``
    returns ``(output, jvp_out)``, so ``[0]`` is the layer output :math:`f(Y)`, not :math:`Ju`. Every
    step then forms :math:`J^\top f(Y)` whatever the current vector, and the loop returns
    :math:`\sqrt{\|J^\top f(Y)\|_2}` after about two steps: a value that scales with the output, is
    0 when :math:`f(Y) = 0` and is not :math:`\|J_f(Y)\|_2` (docs/notes/field.md §2.2 [V, checked by running
    their code]: symmetric :math:`A`, :math:`n = 8`: 5.997 against :math:`\|J\|_2 = 2.1938`). With the
    index ``[1]`` their loop computes :math:`\|J\|_2` and agrees with this function to about 1e-7
    (their stop rule: change of :math:`\mu = \sigma^2` below 1e-4, at most 100 steps).
    ``tests/test_lipschitz.py`` ports the published loop: on two tokens :math:`(4, 0), (0, 0)` with
    logits :math:`x_i^\top e_2e_1^\top x_j` (their :math:`A = e_1e_2^\top`) and :math:`V = I` it gives
    3.4150 (the notes' 3.415) against :math:`\|J\|_2 = 2 + \sqrt5 = 4.2361` (the notes' exact value
    :math:`\sqrt{17}` is not reproduced here, in either logit convention).

    For top-k attention the selection is outside the gradient, so this is the constant of the
    masked softmax with the current selection (top-k is discontinuous at ties, docs/notes/field.md §3.3).

    Args:
      layer_fn: function of the tokens ``[T, d]`` (e.g. from :func:`attention_layer`).
      x: the tokens ``[T, d]`` (one sequence).
      key, v0, tol, max_iter: as in :func:`softmax_stability.empirical.power_iteration_norm`.

    Returns:
      :class:`softmax_stability.empirical.PowerIterationResult` ``(norm, vector, iterations,
      converged)``; ``norm`` is the measured constant.

    Example:
      >>> import jax.numpy as jnp
      >>> r = measured_lipschitz(lambda x: 3.0 * x, jnp.ones((4, 2)))
      >>> round(float(r.norm), 6)
      3.0
    """
    if not callable(layer_fn):
        raise TypeError(f"layer_fn must be callable, got {type(layer_fn).__name__}")
    x = as_float_array(x, "x")
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"x must have shape [T, d] (one sequence), got {x.shape}")
    return power_iteration_norm(layer_fn, x, key=key, v0=v0, tol=tol, max_iter=max_iter)


def attention_layer(params: Mapping[str, Any], variant: str = "full", *, k_top: int = 8,
                    window: int = 8, block: int = 8, config: "_attn.SSAConfig | None" = None,
                    causal: bool = False, implementation: str | None = None) -> Callable:
    r"""One attention layer variant as a function of the tokens ``[T, d] -> [T, d_out]``.

    * ``"full"``: :func:`softmax_stability.attention.multi_head_attention` (softmax).
    * ``"topk"``: the same with ``normalizer="topk"``, ``min(k_top, T)`` keys per query.
    * ``"band"``: softmax under :func:`softmax_stability.masks.band_mask` ``(T, min(window, T))``.
    * ``"block"``: softmax under :func:`softmax_stability.masks.block_mask` ``(T, min(block, T))``.
    * ``"ssa"``: :func:`softmax_stability.attention.selective_self_attention` with ``config``
      (``params`` from :func:`softmax_stability.attention.init_ssa_params`), positions ``0..T-1``.

    Masks are built from the static sequence length at call time, so one function serves every
    ``T``.

    Args:
      params: layer parameters.
      variant: one of :data:`VARIANTS`.
      k_top, window, block: sparsity sizes (ints >= 1), clipped to ``T``.
      config: the :class:`softmax_stability.attention.SSAConfig` (``"ssa"`` only, required).
      causal: causal masking (all variants).
      implementation: passed to the layer (``None``: XLA on CPU).

    Returns:
      ``fn(x)``.

    Example:
      >>> import jax
      >>> from softmax_stability.attention import init_attention_params
      >>> p = init_attention_params(jax.random.PRNGKey(0), 4, 1)
      >>> f = attention_layer(p, "band", window=2)
      >>> f(jax.numpy.ones((5, 4))).shape
      (5, 4)
    """
    check_choice(variant, "variant", VARIANTS)
    k_top = check_int_in_range(k_top, "k_top", 1)
    window = check_int_in_range(window, "window", 1)
    block = check_int_in_range(block, "block", 1)
    if not isinstance(causal, (bool, np.bool_)):
        raise TypeError(f"causal must be a bool, got {causal!r}")
    _check_params(params)
    if variant == "ssa":
        if not isinstance(config, _attn.SSAConfig):
            raise TypeError("variant='ssa' needs config=SSAConfig(...) (and params from init_ssa_params)")
        if "temperature" not in params:
            raise ValueError("variant='ssa' needs params from init_ssa_params (no 'temperature' entry)")
    elif config is not None:
        raise ValueError(f"config is only used with variant='ssa', got variant={variant!r}")

    def fn(x):
        T = x.shape[-2]
        kw = dict(causal=causal, implementation=implementation)
        if variant == "full":
            return _attn.multi_head_attention(params, x, **kw)
        if variant == "topk":
            return _attn.multi_head_attention(params, x, normalizer="topk", k_top=min(k_top, T), **kw)
        if variant in ("band", "block"):
            m = (_masks.band_mask(T, min(window, T)) if variant == "band"
                 else _masks.block_mask(T, min(block, T)))
            # the barrier keeps XLA from constant-folding reductions over the [T, T] mask (seconds
            # of compile time at T = 1024)
            m = jax.lax.optimization_barrier(jnp.asarray(m))
            return _attn.multi_head_attention(params, x, mask=m, **kw)
        return _attn.selective_self_attention(params, x, positions=0, config=config, **kw)

    return fn


def adversarial_direction(A, *, method: str = "symmetric"):
    r"""Direction and token pattern of the Castin-Ablin-Peyre adversarial input for logits
    :math:`x_i^\top A x_j`.

    Let :math:`\lambda_{\max}, \lambda_{\min}` be the extreme eigenvalues and :math:`u` a unit
    eigenvector. If :math:`\lambda_{\max} > -8\lambda_{\min}` the pattern is :math:`(a, b) = (1, 1/2)`
    on :math:`u = u_{\max}` (token 1 at :math:`Ru`, the others at :math:`Ru/2`), else
    :math:`(a, b) = (-1, 1)` on :math:`u = u_{\min}`. (The rule is their code's; it picks the pattern
    with the larger logit gap :math:`g = R^2 b(a-b)\lambda` between token 1 and the rest, which is
    :math:`R^2\lambda_{\max}/4` resp. :math:`2R^2|\lambda_{\min}|` -- derived here.)

    ``method="castin"``: real eigenpairs of their :math:`A_{code} = A^\top` by
    ``numpy.linalg.eig``, as in ``adversarial_data`` of their code (eager only).
    ``method="symmetric"`` (default): eigenpairs of the symmetric part :math:`(A + A^\top)/2`
    (``eigh``; traceable). Only :math:`u^\top A u` enters the logits on the line
    :math:`\mathbb R u`, and the symmetric part's top eigenvector maximises it; for symmetric
    :math:`A` both methods agree.

    Args:
      A: ``[d, d]`` logit matrix (:func:`head_matrices`).
      method: ``"symmetric"`` or ``"castin"``.

    Returns:
      ``(u, a, b, lam)``: unit vector ``[d]``, the pattern, and :math:`\lambda = u^\top A u`.

    Example:
      >>> import jax.numpy as jnp
      >>> u, a, b, lam = adversarial_direction(jnp.diag(jnp.array([2.0, -0.1])))
      >>> [abs(float(t)) for t in u], float(a), float(b), float(lam)
      ([1.0, 0.0], 1.0, 0.5, 2.0)
      >>> float(adversarial_direction(jnp.diag(jnp.array([2.0, -1.0])))[3])  # gap 2R^2 > R^2/2
      -1.0
    """
    check_choice(method, "method", _METHODS)
    A = as_float_array(A, "A")
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] < 1:
        raise ValueError(f"A must be a square matrix [d, d], got shape {A.shape}")
    if method == "castin":
        if not is_concrete(A):
            raise TypeError("method='castin' uses numpy.linalg.eig and needs a concrete A; use "
                            "method='symmetric' under jit/vmap")
        An = np.asarray(A, dtype=np.float64)
        w, vec = np.linalg.eig(An.T)
        real = np.abs(w.imag) <= 1e-12 * max(1.0, float(np.max(np.abs(w))))
        if not np.any(real):
            raise ValueError("A has no real eigenvalue (method='castin'); use method='symmetric'")
        w, vec = w.real[real], vec[:, real].real
        i_max, i_min = int(np.argmax(w)), int(np.argmin(w))
        if w[i_max] > -8 * w[i_min]:
            u, a, b = vec[:, i_max], 1.0, 0.5
        else:
            u, a, b = vec[:, i_min], -1.0, 1.0
        u = u / np.linalg.norm(u)
        lam = float(u @ An @ u)
        if not b * (a - b) * lam > 0:
            raise ValueError("A has no direction with a positive logit gap (u^T A u = 0)")
        dt = A.dtype
        return jnp.asarray(u, dt), jnp.asarray(a, dt), jnp.asarray(b, dt), jnp.asarray(lam, dt)
    w, vec = jnp.linalg.eigh(0.5 * (A + A.T))
    pos = w[-1] > -8 * w[0]
    u = jnp.where(pos, vec[:, -1], vec[:, 0])
    a = jnp.where(pos, 1.0, -1.0).astype(A.dtype)
    b = jnp.where(pos, 0.5, 1.0).astype(A.dtype)
    lam = u @ A @ u
    if is_concrete(lam) and not float(b * (a - b) * lam) > 0:
        raise ValueError("A has no direction with a positive logit gap (its symmetric part is 0)")
    return u, a, b, lam


def _radius(a, b, lam, radius, gap):
    if (radius is None) == (gap is None):
        raise ValueError("give exactly one of radius (> 0) and gap (> 0)")
    if radius is not None:
        check_positive_finite(radius, "radius")
        return jnp.asarray(radius)
    check_positive_finite(gap, "gap")
    return jnp.sqrt(gap / (b * (a - b) * lam))


def adversarial_tokens(A, n: int, *, radius: float | None = None, gap: float | None = None,
                       method: str = "symmetric") -> jax.Array:
    r"""The adversarial input of Castin, Ablin & Peyre: one token at :math:`aRu`, the other
    :math:`n-1` at :math:`bRu` (:func:`adversarial_direction`).

    With :math:`(a, b) = (1, 1/2)` this is their ``X[0] = R u``, ``X[1:] = R u / 2``. Every query
    :math:`i \ge 2` then sees token 1 with a logit gap :math:`g = R^2 b(a-b)\lambda` over the others,
    so it puts weight :math:`p = 1/(1 + (n-1)e^{-g})` on it; while :math:`e^{g} \gg n` all
    :math:`n - 1` outputs copy token 1 and moving it moves them all, which gives the
    :math:`\sqrt{n-1}` growth (:func:`adversarial_lower_bound`). At a fixed radius the growth
    stops once :math:`n \gtrsim e^g` (their "tight for realistic n").

    Args:
      A: ``[d, d]`` logit matrix of the head to attack (:func:`head_matrices`).
      n: number of tokens (>= 2).
      radius: :math:`R > 0` (their ``R``), or
      gap: the logit gap :math:`g > 0` to reach (then :math:`R = \sqrt{g/(b(a-b)\lambda)}`).
      method: see :func:`adversarial_direction`.

    Returns:
      Tokens ``[n, d]``.

    Example:
      >>> import jax.numpy as jnp
      >>> x = adversarial_tokens(jnp.diag(jnp.array([1.0, 0.5])), 3, radius=2.0)
      >>> [[abs(float(v)) for v in row] for row in x]
      [[2.0, 0.0], [1.0, 0.0], [1.0, 0.0]]
    """
    n = check_int_in_range(n, "n", 2)
    u, a, b, lam = adversarial_direction(A, method=method)
    R = _radius(a, b, lam, radius, gap)
    coef = jnp.concatenate([jnp.full((1,), a), jnp.full((n - 1,), b)]).astype(u.dtype)
    return (R * coef)[:, None] * u[None, :]


def adversarial_lower_bound(A, V, n: int, *, radius: float | None = None, gap: float | None = None,
                            method: str = "symmetric") -> jax.Array:
    r"""Closed-form lower bound on the local Lipschitz constant of a single softmax head at
    :func:`adversarial_tokens` (derived here).

    For :math:`f_i(X) = \sum_j P_{ij} V^\top x_j`, :math:`P_{i\cdot} = \mathrm{softmax}(x_i^\top A X^\top)`,
    at :math:`x_1 = aRu`, :math:`x_{j\ge2} = bRu` (:math:`\|u\|=1`, :math:`\lambda = u^\top A u`),
    the perturbation :math:`E = (u, 0, \dots, 0)` (unit norm) has, by the chain rule,

    .. math::
        \|J_f E\|_2^2 = \|V^\top u\|_2^2\Big[\big(q(1+(1-q)k)\big)^2
          + (n-1)\big(p(1+(1-p)g)\big)^2\Big],

    .. math::
        g = R^2 b(a-b)\lambda,\quad k = R^2(a-b)(2a-b)\lambda,\quad
        p = \frac{1}{1+(n-1)e^{-g}},\quad q = \frac{1}{1+(n-1)e^{-R^2 a(a-b)\lambda}} .

    (Row :math:`i \ge 2`: :math:`df_i = V^\top[p\,u + p(1-p)(x_1 - x_2)\,bR\lambda]`; row 1:
    :math:`df_1 = V^\top[q\,u + q(1-q)(x_1 - x_2)(2a-b)R\lambda]`; the covariance form of the
    softmax derivative, docs/notes/field.md §1.1.) Hence

    .. math::
        \|J_f(X)\|_2 \;\ge\; \|J_f E\|_2 \;\ge\; \sqrt{n-1}\;p\,(1+(1-p)g)\,\|V^\top u\|_2
        \;\ge\; \tfrac12\sqrt{n-1}\,\|V^\top u\|_2 \quad\text{when } g \ge \ln(n-1),

    which is the :math:`\sqrt n` growth of the adversarial input. The constant improves to 1:
    :math:`p(1+(1-p)g) - 1 = (1-p)(pg - 1) \ge 0` when :math:`p \ge \tfrac12` and :math:`g \ge 2`, so

    .. math::
        \|J_f(X)\|_2 \;\ge\; \sqrt{n-1}\,\|V^\top u\|_2 \quad\text{when } g \ge \max(2, \ln(n-1)),

    and this is attained as :math:`g \to \infty` with the pattern :math:`(a, b) = (-1, 1)` and
    :math:`\|V^\top u\|_2 = \|V\|_2` (rows :math:`2..n` copy token 1, row 1 the mean of the others:
    :math:`\|J_f\|_2 \to \sqrt{n-1}\,\|V\|_2`); with :math:`(1, \tfrac12)` row 1 copies token 1 too
    and the ratio tends to :math:`\sqrt{(n-1)/n}` (claim ``L2-attention-lipschitz-sqrt-n``). Without
    :math:`g \ge 2` the constant 1 fails: at :math:`n = 4`, :math:`g = 1.2` the measured
    :math:`\|J_f\|_2` is :math:`0.89\sqrt3\,\|V^\top u\|_2`. The identity is checked against
    ``jax.jvp`` by the claim ``L2b-adversarial-directional-derivative`` (numerically; no
    ``proofs_check`` entry). For a multi-head layer *without* output projection (heads
    concatenated) head :math:`h`'s value is still a lower bound (the other heads only add
    orthogonal output blocks); with an output projection it is not, in general.

    Args:
      A: ``[d, d]`` logit matrix; V: ``[d, d_out]`` value map (:func:`head_matrices`).
      n: number of tokens (>= 2).
      radius, gap, method: as in :func:`adversarial_tokens` (same :math:`u`).

    Returns:
      Scalar :math:`\|J_f E\|_2`.

    Example:
      >>> import jax.numpy as jnp
      >>> float(adversarial_lower_bound(jnp.eye(1), jnp.eye(1), 101, gap=50.0)) > 0.999 * 10
      True
    """
    n = check_int_in_range(n, "n", 2)
    V = as_float_array(V, "V")
    u, a, b, lam = adversarial_direction(A, method=method)
    if V.ndim != 2 or V.shape[0] != u.shape[0]:
        raise ValueError(f"V must have shape [{u.shape[0]}, d_out], got {V.shape}")
    R = _radius(a, b, lam, radius, gap)
    log_m = math.log(n - 1)
    g = R**2 * b * (a - b) * lam
    k = R**2 * (a - b) * (2 * a - b) * lam
    p = jax.nn.sigmoid(g - log_m)  # 1 / (1 + (n-1) e^{-g}) without overflow
    q = jax.nn.sigmoid(R**2 * a * (a - b) * lam - log_m)
    vu = jnp.linalg.norm(u @ V)
    rows = (q * (1 + (1 - q) * k)) ** 2 + (n - 1) * (p * (1 + (1 - p) * g)) ** 2
    return vu * jnp.sqrt(rows)
