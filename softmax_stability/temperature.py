r"""Inverse-temperature schedules for attention, as functions of the number of visible keys.

Every schedule returns an *inverse* temperature :math:`\tau` that multiplies a query's logits,
:math:`\operatorname{softmax}(\tau z)`. For a causal model the query at 0-based position
:math:`i` sees :math:`n = i + 1` keys (the SSA authors' ``row_length = arange(1, T + 1)``), so a
per-query schedule is ``schedule(positions + 1)``. A per-query :math:`\tau` is a row scale of the
logit matrix, i.e. it can be folded into the query vector.

============================  =================================================  ===========================
schedule                      :math:`\tau(n)`                                    source
============================  =================================================  ===========================
:func:`constant`              :math:`\tau_0`                                     vanilla attention (:math:`\tau_0=1`)
:func:`log_n_scaling`         :math:`\ln n`                                      Chiang & Cholak 2022 [unconfirmed form]
:func:`ssmax`                 :math:`s\ln n`                                     Nakanishi 2025 (SSMax)
:func:`position_temperature`  :math:`1 + g(\alpha)\ln n`                         SSA, position part
:func:`ssa_temperature`       :math:`1 + g(\alpha)\ln n + \tanh f(x)`            SSA, position + token part
:func:`yarn`                  :math:`1 + 0.1\ln s` (:math:`s` = context scale)   Peng et al. 2023 (YaRN)
============================  =================================================  ===========================

The SSA gain :math:`g` has three parametrisations (:func:`position_gain`): ``"sigmoid"``
(:math:`\sigma(\alpha)`, the form of the unofficial reproductions, docs/notes/selective_attention.md §1.3 [3P, unconfirmed]),
``"double_exp"`` (:math:`e^{-e^{\alpha}}`, the official code ``model_finetune_att.py``, docs/notes/selective_attention.md §1.7)
and ``"linear"`` (:math:`\alpha`, the official code's ``no_func`` ablation). The SSA token part
:math:`\tanh f(x)` with the weight-shared :math:`f(x)=u^\top\operatorname{GELU}(W^\top x)`
(:func:`token_logit`, :func:`token_temperature`) follows the unofficial reproductions
(docs/notes/selective_attention.md §1.3-1.4, [3P], unconfirmed against the paper).

Argument checks are eager when the values are concrete: ``n >= 1`` and finite, every parameter
finite, ``parametrisation`` one of the three names; temperature and scale parameters (``tau`` of
:func:`constant`, ``s`` of :func:`ssmax`, ``scale`` of :func:`yarn`, ``train_length``) must be
``> 0``, and a schedule whose value would be negative (``"linear"`` with a negative ``alpha``)
raises ``ValueError`` naming ``alpha``: a negative inverse temperature silently reverses the
order of the attention weights. A schedule value of 0 is allowed (``log_n_scaling(1) = 0``: at
:math:`n = 1` the single key gets weight 1 at any temperature). Under ``jit`` traced values are not checked (a NaN
then propagates, a negative value reverses the weights); for a run-time check use
``jax.experimental.checkify`` as in the example of :func:`softmax_stability.maps.softmax`. All
functions broadcast their array arguments elementwise (integers are promoted to the default
float dtype; an empty ``n`` gives an empty result) and work under ``jax.jit``, ``jax.vmap`` and
``jax.grad`` (with respect to the parameters).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from softmax_stability._checks import as_float_array, is_concrete

__all__ = [
    "PARAMETRISATIONS",
    "constant",
    "log_n_scaling",
    "ssmax",
    "position_gain",
    "position_temperature",
    "gelu",
    "token_logit",
    "token_temperature",
    "ssa_temperature",
    "yarn",
    "yarn_schedule",
    "schedule",
]

PARAMETRISATIONS = ("sigmoid", "double_exp", "linear")


# ----------------------------------------------------------------------------------------------
# eager checks


def _check_n(n: Any) -> jax.Array:
    x = as_float_array(n, "n")
    if is_concrete(x):
        a = np.asarray(x)
        if a.size and (not np.all(np.isfinite(a)) or np.any(a < 1)):
            raise ValueError(f"n (number of visible keys) must be finite and >= 1, got {n!r}")
    return x


def _check_finite(v: Any, name: str) -> jax.Array:
    x = as_float_array(v, name)
    if is_concrete(x):
        a = np.asarray(x)
        if a.size and not np.all(np.isfinite(a)):
            raise ValueError(f"{name} must be finite, got {v!r}")
    return x


def _check_positive(v: Any, name: str) -> jax.Array:
    """A temperature or scale parameter: finite and > 0 when concrete."""
    x = as_float_array(v, name)
    if is_concrete(x):
        a = np.asarray(x)
        if a.size and (not np.all(np.isfinite(a)) or np.any(a <= 0)):
            raise ValueError(f"{name} must be finite and > 0 (in (0, inf)), got {v!r}")
    return x


def _check_tau_not_negative(tau: jax.Array, n: jax.Array, what: str, hint: str = "") -> jax.Array:
    """The inverse temperature a schedule returns must not be negative (checked when concrete).

    0 is allowed: the library's schedules reach it legitimately (``log_n_scaling(1)``, ``ssmax(1, s)``,
    a saturated token part at ``n = 1``); it gives uniform weights, not reversed ones."""
    if is_concrete(tau) and is_concrete(n) and tau.size:
        a = np.asarray(tau)
        bad = a < 0
        if np.any(bad):
            nn = np.broadcast_to(np.asarray(n), a.shape)[bad]
            raise ValueError(f"{what} gives a negative inverse temperature {float(a[bad].min()):.6g} "
                             f"(at n = {float(nn.max()):g}); it must be >= 0 for every n{hint} (a negative "
                             f"one reverses the order of the attention weights)")
    return tau


def _check_parametrisation(parametrisation: Any) -> str:
    if parametrisation not in PARAMETRISATIONS:
        raise ValueError(f"parametrisation must be one of {PARAMETRISATIONS}, got {parametrisation!r}")
    return parametrisation


# ----------------------------------------------------------------------------------------------
# schedules


def constant(n: Any, tau: Any = 1.0) -> jax.Array:
    r"""Constant inverse temperature, :math:`\tau(n) = \tau_0`; :math:`\tau_0 = 1` is vanilla attention.

    Args:
        n: number(s) of visible keys, ``>= 1`` (only the shape is used).
        tau: the constant :math:`\tau_0`, finite and ``> 0``.

    Returns:
        ``tau`` broadcast to the shape of ``n`` (float).

    Example:
        >>> from softmax_stability.temperature import constant
        >>> print(constant([1, 10, 100], 2.0))
        [2. 2. 2.]
    """
    n = _check_n(n)
    tau = _check_positive(tau, "tau")
    return jnp.broadcast_to(tau, jnp.broadcast_shapes(n.shape, tau.shape)).astype(
        jnp.result_type(n.dtype, tau.dtype))


def log_n_scaling(n: Any) -> jax.Array:
    r"""Log-length scaling of the logits, :math:`\tau(n) = \ln n`.

    Source: Chiang & Cholak 2022, "Overcoming a Theoretical Limitation of Self-Attention"
    (logits multiplied by :math:`\log n`; docs/notes/field.md §4.3, the exact form there is
    [unconfirmed]). Equal to :func:`ssmax` with :math:`s = 1`. At :math:`n = 1` it is 0 (a single
    key gets weight 1 at any temperature).

    Args:
        n: number(s) of visible keys, ``>= 1``.

    Returns:
        :math:`\ln n`, same shape as ``n``.

    Example:
        >>> import numpy as np
        >>> from softmax_stability.temperature import log_n_scaling
        >>> print(np.round(log_n_scaling([1, np.e, 4096]), 4))
        [0.     1.     8.3178]
    """
    return jnp.log(_check_n(n))


def ssmax(n: Any, s: Any) -> jax.Array:
    r"""Scalable-Softmax (SSMax) inverse temperature, :math:`\tau(n) = s \ln n`.

    :math:`\operatorname{softmax}(s\ln n\cdot z)_i = n^{s z_i}/\sum_j n^{s z_j}`.

    Source: Nakanishi 2025, arXiv:2501.19399 (docs/notes/field.md §4.4), :math:`s` a learnable scalar
    per layer or head.

    Args:
        n: number(s) of visible keys, ``>= 1``.
        s: the scaling parameter, finite and ``> 0`` (broadcast against ``n``).

    Returns:
        :math:`s\ln n`.

    Example:
        >>> from softmax_stability.temperature import ssmax
        >>> print(f"{float(ssmax(1024, 0.43)):.3f}")
        2.981
    """
    return _check_positive(s, "s") * jnp.log(_check_n(n))


def position_gain(alpha: Any, parametrisation: str = "sigmoid") -> jax.Array:
    r"""The log-slope :math:`g(\alpha)` of the SSA position temperature :math:`1 + g(\alpha)\ln n`.

    .. math::
        g(\alpha) = \begin{cases} \sigma(\alpha) = 1/(1+e^{-\alpha}) & \texttt{"sigmoid"} \\
        e^{-e^{\alpha}} & \texttt{"double\_exp"} \\ \alpha & \texttt{"linear"} \end{cases}

    Sources: ``"sigmoid"``: unofficial SSA reproductions (docs/notes/selective_attention.md §1.3, [3P], unconfirmed as the
    paper's form), :math:`g\in(0,1)`; ``"double_exp"``: official SSA code
    ``lit_gpt/model_finetune_att.py`` (docs/notes/selective_attention.md §1.7), :math:`g\in(0,1)`, init :math:`\alpha=2`
    gives :math:`e^{-e^2} = 6.1798\times10^{-4}`; ``"linear"``: the official ``no_func`` ablation
    (``model_finetune_att_no_func.py``), any real :math:`g`.

    Args:
        alpha: the parameter, finite (any shape, e.g. one per head).
        parametrisation: ``"sigmoid"``, ``"double_exp"`` or ``"linear"``.

    Returns:
        :math:`g(\alpha)`, same shape as ``alpha``.

    Example:
        >>> from softmax_stability.temperature import position_gain
        >>> print(float(position_gain(0.0)), f"{float(position_gain(2.0, 'double_exp')):.5e}")
        0.5 6.17979e-04
    """
    parametrisation = _check_parametrisation(parametrisation)
    a = _check_finite(alpha, "alpha")
    if parametrisation == "sigmoid":
        return jax.nn.sigmoid(a)
    if parametrisation == "double_exp":
        return jnp.exp(-jnp.exp(a))
    return a


def position_temperature(n: Any, alpha: Any, parametrisation: str = "sigmoid") -> jax.Array:
    r"""SSA position-aware inverse temperature :math:`\tau^{\mathrm{pos}}(n) = 1 + g(\alpha)\ln n`.

    :math:`g` is :func:`position_gain`. :math:`\tau^{\mathrm{pos}}(1) = 1` for every
    :math:`\alpha`; with ``"sigmoid"`` or ``"double_exp"`` it is increasing in :math:`n` and lies
    in :math:`(1, 1 + \ln n)`. With ``"linear"`` and :math:`\alpha = c` it is the schedule
    :math:`1 + c\ln n` of the dilution claims (:func:`softmax_stability.dilution.needle_limit`).

    Source: SSA (Zhang et al. 2024), official code ``model_finetune_att.py`` (``double_exp``) and
    the reproductions' ``sigmoid`` form (docs/notes/selective_attention.md §1.3, §1.7).

    Args:
        n: number(s) of visible keys, ``>= 1`` (causal query at 0-based position ``i``: ``i + 1``).
        alpha: the gain parameter, finite; broadcast against ``n``. With ``"linear"`` a negative
            ``alpha`` must keep :math:`1 + \alpha\ln n \ge 0` for every given ``n``, i.e.
            :math:`\alpha \ge -1/\ln n_{\max}` (``ValueError`` naming ``alpha`` otherwise, when
            concrete: a negative inverse temperature reverses the attention weights).
        parametrisation: see :func:`position_gain`.

    Returns:
        :math:`1 + g(\alpha)\ln n`, broadcast shape of ``n`` and ``alpha``.

    Example:
        >>> from softmax_stability.temperature import position_temperature
        >>> print(f"{float(position_temperature(2048, 2.0, 'double_exp')):.6f}")
        1.004712
    """
    g = position_gain(alpha, parametrisation)
    n = _check_n(n)
    what = f"alpha={alpha!r} with parametrisation={parametrisation!r}"
    return _check_tau_not_negative(1.0 + g * jnp.log(n), n, what, ", i.e. alpha >= -1/ln(max n)")


_INV_SQRT2 = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327


@jax.custom_jvp
def gelu(x: jax.Array) -> jax.Array:
    r"""Exact (erf) GELU, :math:`\operatorname{GELU}(x) = x\,\Phi(x)`, with a closed-form derivative.

    .. math::
        \Phi(x) = \tfrac12\big(1 + \operatorname{erf}(x/\sqrt2)\big), \qquad
        \operatorname{GELU}'(x) = \Phi(x) + x\,\varphi(x),\quad
        \varphi(x) = e^{-x^2/2}/\sqrt{2\pi}.

    The same function as ``jax.nn.gelu(x, approximate=False)`` (the SSA authors' PyTorch default,
    ``nn.GELU()``); the ``custom_jvp`` computes :math:`\Phi` once for the value and the
    derivative, where autodiff of the erf form evaluates it again in the backward pass. On the
    SSA token features that is most of the layer's overhead over plain attention on a CPU
    (``benchmarks/RESULTS.md``). Higher derivatives work (the rule is itself differentiable).

    Accuracy: absolute error a few ulp of :math:`\max(|x|, 1)`, as ``jax.nn.gelu``'s; relative
    accuracy is lost in the far left tail (:math:`1 + \operatorname{erf}` cancels, so values
    below about :math:`10^{-16}|x|` in float64 come out as 0 or with few correct digits), where
    ``jax.nn.gelu`` uses ``erfc``. As a token feature (summed with O(1) terms) that is immaterial.

    Args:
      x: a float array.

    Returns:
      :math:`x\,\Phi(x)`, elementwise.

    Example:
      >>> import jax.numpy as jnp
      >>> [round(float(v), 6) for v in gelu(jnp.array([-1.0, 0.0, 1.0]))]
      [-0.158655, 0.0, 0.841345]
    """
    # erf, not erfc: XLA's erfc evaluates two approximations and selects (SSA layer 1.26x -> 1.14x
    # plain attention at T = 512 on CPU); the price is relative accuracy where x << 0 (below)
    return x * (0.5 + 0.5 * jax.lax.erf(x * _INV_SQRT2))


@gelu.defjvp
def _gelu_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    cdf = 0.5 + 0.5 * jax.lax.erf(x * _INV_SQRT2)
    pdf = jnp.exp(-0.5 * x * x) * _INV_SQRT_2PI
    return x * cdf, (cdf + x * pdf) * dx


def token_logit(x: Any, w: Any, u: Any) -> jax.Array:
    r"""The SSA token feature :math:`f(x) = u^\top \operatorname{GELU}(W^\top x)` (weight-shared form).

    With weight sharing :math:`W` is the attention's own projection (:math:`W_q` for the query
    temperature, :math:`W_v` for the value temperature) and only :math:`u\in\mathbb R^{d_h}` is new.

    Source: unofficial SSA reproductions (docs/notes/selective_attention.md §1.4, [3P], unconfirmed against the paper).

    Args:
        x: tokens, shape ``(..., d)``.
        w: projection, shape ``(d, d_h)``.
        u: read-out vector, shape ``(d_h,)``.

    Returns:
        :math:`f(x)`, shape ``x.shape[:-1]``.

    Example:
        >>> import jax.numpy as jnp
        >>> from softmax_stability.temperature import token_logit
        >>> print(token_logit(jnp.ones((3, 2)), jnp.eye(2), jnp.zeros(2)))
        [0. 0. 0.]
    """
    x = as_float_array(x, "x")
    w = as_float_array(w, "w")
    u = as_float_array(u, "u")
    if x.ndim < 1 or w.ndim != 2 or u.ndim != 1 or x.shape[-1] != w.shape[0] or w.shape[1] != u.shape[0]:
        raise ValueError(f"need x (..., d), w (d, d_h), u (d_h,); got shapes {x.shape}, {w.shape}, {u.shape}")
    return gelu(x @ w) @ u


def token_temperature(token_logit: Any) -> jax.Array:
    r"""SSA token part of the temperature, :math:`\tau^{\mathrm{tok}} = \tanh f(x) \in (-1, 1)`.

    Source: docs/notes/selective_attention.md §1.3 ([3P], unconfirmed against the paper).

    Args:
        token_logit: :math:`f(x)` (e.g. from :func:`token_logit`), finite when concrete.

    Returns:
        :math:`\tanh f(x)`.

    Example:
        >>> from softmax_stability.temperature import token_temperature
        >>> print(token_temperature(0.0))
        0.0
    """
    return jnp.tanh(_check_finite(token_logit, "token_logit"))


def ssa_temperature(n: Any, alpha: Any, token_logit: Any = None, *,
                    parametrisation: str = "sigmoid") -> jax.Array:
    r"""SSA inverse temperature :math:`\tau = 1 + g(\alpha)\ln n + \tanh f(x)` (additive combination).

    The position part is :func:`position_temperature`; the token part :func:`token_temperature`
    is omitted when ``token_logit`` is None. With ``"sigmoid"`` or ``"double_exp"`` and a token
    part, :math:`\tau \in (g\ln n,\ 2 + g\ln n)`, so :math:`\tau > 0` (docs/notes/selective_attention.md §1.3 invariant).
    :math:`g = 0` and no token part give :math:`\tau \equiv 1`, i.e. vanilla attention.

    Evaluated as :math:`g\ln n + 2\sigma(2f)` (:math:`1 + \tanh f = 2\sigma(2f)`), which keeps
    full relative accuracy as :math:`f \to -\infty`. In float64 :math:`\tau > 0` for every
    :math:`n \ge 1` as long as :math:`f \ge -354.19` (:math:`\sigma(2f) \ge 2^{-1022}`; below, XLA
    flushes it to 0, so at :math:`n = 1` :math:`\tau = 0`); float32: :math:`f \ge -43.6`. The
    plain :math:`1 + \tanh f` is exactly 0 already for :math:`f \le -19.1` in float64.

    Source: SSA (Zhang et al. 2024) as reconstructed in docs/notes/selective_attention.md §1.3 ([3P]: additive form of the
    unofficial reproductions; unconfirmed against the paper).

    Args:
        n: number(s) of visible keys, ``>= 1``.
        alpha: position gain parameter, finite (see :func:`position_temperature` for ``"linear"``).
        token_logit: optional :math:`f(x)` per query, finite when concrete; with ``"linear"`` and a
            negative ``alpha`` the sum must stay ``>= 0`` (``ValueError`` otherwise, when concrete).
        parametrisation: ``"sigmoid"`` (default), ``"double_exp"`` or ``"linear"``.

    Returns:
        :math:`\tau`, the broadcast shape of the arguments.

    Example:
        >>> import numpy as np
        >>> from softmax_stability.temperature import ssa_temperature
        >>> print(np.asarray(ssa_temperature([1, 1024], 0.0), float).round(4))
        [1.     4.4657]
    """
    if token_logit is None:
        return position_temperature(n, alpha, parametrisation)
    # 1 + g ln n + tanh f with 1 + tanh f written as 2 sigmoid(2f), the same function without the
    # cancellation: in float64 1 + tanh f is exactly 0 for f <= -19.1 (tanh rounds to -1) and loses
    # digits already for f < -1 (7.8e-16 instead of 6.3e-17 at f = -19); 2 sigmoid(2f) keeps full
    # relative accuracy and stays > 0 down to f = -354.19 (below, sigmoid(2f) < 2^-1022 and XLA
    # flushes it to 0). g ln n is not taken from 1 + g ln n, which would round away small g ln n.
    n = _check_n(n)
    g_log_n = position_gain(alpha, parametrisation) * jnp.log(n)
    tau = g_log_n + 2.0 * jax.nn.sigmoid(2.0 * _check_finite(token_logit, "token_logit"))
    return _check_tau_not_negative(tau, n, f"alpha={alpha!r} ({parametrisation!r}) with this token_logit")


def yarn(scale: Any) -> jax.Array:
    r"""YaRN's attention factor :math:`1 + 0.1\ln s` for a context extended by a factor :math:`s`.

    .. math::
        \sqrt{1/t} = \begin{cases} 0.1\ln s + 1 & s > 1 \\ 1 & s \le 1 \end{cases}

    YaRN multiplies both :math:`q` and :math:`k` by this factor, so the logits are scaled by its
    square :math:`1/t`; as a per-query schedule (SSA's "YaRN" baseline, docs/notes/selective_attention.md §3 Table D,
    exact use unconfirmed) it is used here as an inverse temperature on its own.

    Source: Peng, Quesnelle, Fan, Shippole 2023, "YaRN", eq. for :math:`\sqrt{1/t}`
    (``get_mscale`` returns 1 for :math:`s \le 1`).

    Args:
        scale: context scale factor :math:`s > 0`, finite.

    Returns:
        :math:`1 + 0.1\ln\max(s, 1)`.

    Example:
        >>> import numpy as np
        >>> from softmax_stability.temperature import yarn
        >>> print(np.asarray(yarn([0.5, 1.0, np.e ** 10]), float).round(5))
        [1. 1. 2.]
    """
    s = as_float_array(scale, "scale")
    if is_concrete(s):
        a = np.asarray(s)
        if a.size and (not np.all(np.isfinite(a)) or np.any(a <= 0)):
            raise ValueError(f"scale must be finite and > 0, got {scale!r}")
    return 1.0 + 0.1 * jnp.log(jnp.maximum(s, 1.0))


def yarn_schedule(n: Any, train_length: Any) -> jax.Array:
    r"""YaRN-style schedule over visible keys: :func:`yarn` at :math:`s = n / n_{\mathrm{train}}`.

    Args:
        n: number(s) of visible keys, ``>= 1``.
        train_length: the trained context length :math:`n_{\mathrm{train}} > 0`.

    Returns:
        :math:`1 + 0.1\ln\max(n/n_{\mathrm{train}}, 1)`.

    Example:
        >>> import numpy as np
        >>> from softmax_stability.temperature import yarn_schedule
        >>> print(np.asarray(yarn_schedule([8, 16, 32], 16), float).round(5))
        [1.      1.      1.06931]
    """
    n = _check_n(n)
    tl = as_float_array(train_length, "train_length")
    if is_concrete(tl):
        a = np.asarray(tl)
        if a.size and (not np.all(np.isfinite(a)) or np.any(a <= 0)):
            raise ValueError(f"train_length must be finite and > 0, got {train_length!r}")
    return yarn(n / tl)


_SCHEDULES: dict[str, Callable[..., jax.Array]] = {
    "constant": constant,
    "log_n": lambda n: log_n_scaling(n),
    "ssmax": ssmax,
    "ssa": position_temperature,
    "yarn": yarn_schedule,
}


def schedule(name: str, **params: Any) -> Callable[[Any], jax.Array]:
    r"""A schedule as a function of ``n`` alone, with its parameters bound.

    Names and parameters: ``"constant"`` (``tau``), ``"log_n"`` (none), ``"ssmax"`` (``s``),
    ``"ssa"`` (``alpha``, ``parametrisation``), ``"yarn"`` (``train_length``).

    Args:
        name: one of the names above.
        **params: the schedule's parameters (checked on the first call).

    Returns:
        ``n -> tau(n)``.

    Example:
        >>> import numpy as np
        >>> from softmax_stability.temperature import schedule
        >>> f = schedule("ssa", alpha=0.5, parametrisation="linear")
        >>> print(np.asarray(f([1, 100]), float).round(4))
        [1.     3.3026]
    """
    if name not in _SCHEDULES:
        raise ValueError(f"name must be one of {tuple(_SCHEDULES)}, got {name!r}")
    fn = _SCHEDULES[name]
    return lambda n: fn(n, **params)
