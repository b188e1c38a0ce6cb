r"""Small-scale reconstructions of the SSA paper's toy experiments (Fig. 2, Fig. 3, Tables 1-2).

Source: Zhang, Chang, Li, Roy-Chowdhury, Chen, Oymak, *Selective Attention: Enhancing Transformer
through Principled Context Control*, NeurIPS 2024, arXiv:2411.12892. Only the captions of these
figures and tables are known here (``docs/notes/selective_attention.md`` §2-§3, tags [CAP]/[RECALL]); the
paper's graph, data models, model sizes, optimiser and numbers were **not recovered**. Every data
model below is therefore *ours*, chosen to make the captioned claims testable at small scale on a
CPU. Nothing here reproduces a number of the paper; the qualitative expectations (docs/notes/selective_attention.md §5,
items 21-23) are unconfirmed.

Three experiments:

1. **Graph next-token task** (SSA Fig. 3 and Table 1): :func:`random_graph`,
   :func:`transition_matrix`, :func:`train_graph_model`, :func:`graph_experiment`.
2. **Norm of** :math:`W = W_qW_k^\top` **needed to fit target attention maps** (SSA Fig. 2):
   :func:`fit_attention_map`, :func:`norm_experiment`.
3. **Denoising with value selectivity** (SSA Table 2): :func:`sample_denoising`,
   :func:`bayes_estimator`, :func:`bayes_risk`, :func:`naive_average`, :func:`naive_risk`,
   :func:`train_denoiser`, :func:`denoising_experiment`.

All temperatures go through :func:`softmax_stability.temperature.ssa_temperature` (one formula,
one place): :math:`\tau = 1 + g(\alpha)\ln n + \tanh f(x)` with the ``"linear"`` gain
:math:`g(\alpha)=\alpha` (the official code's ``no_func`` ablation). In the graph task and the
norm experiment every query sees the same :math:`n = K` keys, so the position part would be a
global logit scale; it is frozen at :math:`\alpha = 0` there, leaving the per-token
:math:`\tau = 1 + \tanh f\in(0, 2)`. The denoiser's value temperature learns :math:`\alpha`. Every
temperature model is initialised at :math:`\alpha = 0`, :math:`f \equiv 0`, i.e. :math:`\tau \equiv 1`,
so it starts *exactly* at its vanilla counterpart. Training uses optax (AdamW / Adam) inside one
jitted ``lax.scan``; every result is a deterministic function of the PRNG key.

The one-layer attention (a single head, no output projection) is written here in a few lines of
plain JAX, and is :func:`softmax_stability.attention.dot_product_attention` with a
``query_temperature`` (graph model, map fitting; values the one-hot tokens) or a
``value_temperature`` (denoiser): ``tests/test_ssa_toy.py`` checks both equalities to float32 and
float64 rounding. It does not call that function because the graph and map experiments read the
*log*-map (``log_softmax``, accurate even for weights that underflow in float32), the denoiser's
values have another width than its keys, and its gate may reach :math:`\tau_v \le 0` (a noise
token removed exactly), which ``dot_product_attention`` rejects as a temperature.

What the reconstructions show at the default sizes (quick profile; these are observations about
*our* setups, not the paper's numbers): the SSA model has lower cross-entropy and L1 error on the
graph task, a smaller :math:`\|W_qW_k^\top\|_2` in the fitting experiment, and the value-selective
model a lower denoising MSE than vanilla attention (close to the Bayes risk). The learned graph
temperature *increases* with the node degree here, whereas docs/notes/selective_attention.md §5 item 21 expects the opposite
([RECALL]/[OURS], unconfirmed; the figures ``ssa_fig3`` and ``ssa_table1`` state the direction
measured in each run and whether it agrees); under weight decay a logit gap costs a row norm that
grows with :math:`d(K-d)/K` (docs/notes/selective_attention.md §2.1, Lemma B), so the temperature pays off most on denser rows.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from softmax_stability._checks import check_int_in_range, check_positive_finite
from softmax_stability.temperature import ssa_temperature

__all__ = [
    "degree_levels",
    "random_graph",
    "transition_matrix",
    "init_graph_params",
    "node_temperature",
    "graph_log_probs",
    "train_graph_model",
    "graph_cross_entropy",
    "graph_l1_error",
    "graph_experiment",
    "fit_attention_map",
    "norm_experiment",
    "sample_denoising",
    "bayes_estimator",
    "bayes_risk",
    "naive_average",
    "naive_risk",
    "init_denoiser",
    "denoiser_apply",
    "train_denoiser",
    "denoising_experiment",
]

_F32 = jnp.float32


def _check_key(key: Any, name: str = "key") -> jax.Array:
    k = jnp.asarray(key)
    if not (jnp.issubdtype(k.dtype, jax.dtypes.prng_key) or (k.dtype == jnp.uint32 and k.shape == (2,))):
        raise TypeError(f"{name} must be a JAX PRNG key (jax.random.PRNGKey or jax.random.key), got {key!r}")
    return k


def _check_rate(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    check_positive_finite(value, name)
    return float(value)


def _check_nonneg(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return v


# ================================================================================================
# 1. Graph next-token task (SSA Fig. 3, Table 1)
# ================================================================================================


def degree_levels(num_nodes: int, levels: Sequence[int] = (1, 2, 4, 8)) -> np.ndarray:
    r"""Out-degrees for ``num_nodes`` nodes: ``levels`` repeated in order (node ``i`` gets
    ``levels[i % len(levels)]``), so each degree occurs (nearly) equally often.

    Args:
        num_nodes: number of nodes :math:`K \ge 2`.
        levels: allowed out-degrees, each in :math:`[1, K-1]`.

    Returns:
        int array of shape ``(num_nodes,)``.

    Example:
        >>> from softmax_stability.experiments.ssa_toy import degree_levels
        >>> print(degree_levels(6, (1, 3)))
        [1 3 1 3 1 3]
    """
    k = check_int_in_range(num_nodes, "num_nodes", 2)
    if len(levels) == 0:
        raise ValueError("levels must be non-empty")
    lv = [check_int_in_range(v, "levels[i]", 1, k - 1) for v in levels]
    return np.asarray([lv[i % len(lv)] for i in range(k)], dtype=np.int64)


def _check_degrees(degrees: Any) -> np.ndarray:
    d = np.asarray(degrees)
    if d.ndim != 1 or d.size < 2:
        raise ValueError(f"degrees must be a 1-D sequence of length K >= 2, got shape {d.shape}")
    if not np.issubdtype(d.dtype, np.integer):
        raise TypeError(f"degrees must be integers, got dtype {d.dtype}")
    k = d.size
    if np.any(d < 1) or np.any(d > k - 1):
        raise ValueError(f"every degree must be in [1, K-1] = [1, {k - 1}], got {d.tolist()}")
    return d.astype(np.int64)


def random_graph(key: Any, degrees: Any) -> jax.Array:
    r"""A random directed graph with prescribed out-degrees and no self-loops.

    Data model (ours; the paper's graph was not recovered): node :math:`i` has out-neighbour set
    :math:`N(i)`, a uniformly random subset of size :math:`d_i` of :math:`\{0..K-1\}\setminus\{i\}`,
    drawn independently per node (the ranks of i.i.d. uniforms, self ranked last).

    Args:
        key: JAX PRNG key.
        degrees: int sequence of length :math:`K \ge 2`, entries in :math:`[1, K-1]`.

    Returns:
        boolean adjacency ``(K, K)``; ``A[i, j]`` is True iff :math:`j \in N(i)`; row ``i`` has
        exactly ``degrees[i]`` True entries and ``A[i, i]`` is False.

    Example:
        >>> import jax
        >>> from softmax_stability.experiments.ssa_toy import random_graph
        >>> a = random_graph(jax.random.PRNGKey(0), [1, 2, 3, 1])
        >>> print(a.sum(axis=1), bool(a.diagonal().any()))
        [1 2 3 1] False
    """
    key = _check_key(key)
    d = _check_degrees(degrees)
    return _graph(key, jnp.asarray(d))


def _graph(key, d):
    k = d.shape[-1]
    u = jax.random.uniform(key, (k, k))
    u = jnp.where(jnp.eye(k, dtype=bool), -1.0, u)  # self is ranked last, never chosen (d <= K-1)
    ranks = jnp.argsort(jnp.argsort(-u, axis=1), axis=1)
    return ranks < d[:, None]


def transition_matrix(adjacency: Any, teleport: float = 0.0) -> jax.Array:
    r"""True next-token distribution of the random walk with teleportation,

    .. math::
        P^\star_{ij} = (1-\eta)\,\frac{\mathbb 1[j\in N(i)]}{|N(i)|} + \frac{\eta}{K},

    i.e. with probability :math:`1-\eta` step to a uniform out-neighbour, with probability
    :math:`\eta` (``teleport``) to a uniform node. :math:`\eta = 0` is the plain walk. With
    :math:`\eta > 0` the best logit gap between neighbours and non-neighbours is finite and
    depends on the degree, :math:`g_i = \ln\big(1 + (1-\eta)K/(\eta d_i)\big)`, so a row's
    required spikiness is a decreasing function of its degree (ours; the paper's transition model
    is unknown).

    Args:
        adjacency: boolean ``(K, K)``, every row with at least one True entry.
        teleport: :math:`\eta\in[0, 1]`.

    Returns:
        float ``(K, K)`` row-stochastic matrix.

    Example:
        >>> from softmax_stability.experiments.ssa_toy import transition_matrix
        >>> print(transition_matrix([[False, True], [True, True]]))
        [[0.  1. ]
         [0.5 0.5]]
        >>> print(transition_matrix([[False, True], [True, False]], teleport=0.5))
        [[0.25 0.75]
         [0.75 0.25]]
    """
    a = np.asarray(adjacency)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] < 1:
        raise ValueError(f"adjacency must be a square (K, K) matrix, got shape {a.shape}")
    if a.dtype != np.bool_:
        raise TypeError(f"adjacency must be boolean, got dtype {a.dtype}")
    eta = _check_nonneg(teleport, "teleport")
    if eta > 1:
        raise ValueError(f"teleport must be in [0, 1], got {teleport!r}")
    deg = a.sum(axis=1)
    if np.any(deg < 1):
        raise ValueError("adjacency: every node needs at least one out-neighbour")
    k = a.shape[0]
    p = (1.0 - eta) * a / deg[:, None] + eta / k
    return jnp.asarray(p, jnp.result_type(float))


def init_graph_params(key: Any, num_nodes: int, d_head: int, *, temperature: bool,
                      init_scale: float = 0.1) -> dict:
    r"""Parameters of the one-layer next-token attention model.

    ``wq``, ``wk``: ``(K, d_head)`` with i.i.d. :math:`N(0, s^2/K)` entries (``s = init_scale``);
    with ``temperature`` also the per-token logits ``t = 0`` (``(K,)``), so :math:`\tau\equiv1` at init.

    Example:
        >>> import jax
        >>> from softmax_stability.experiments.ssa_toy import init_graph_params
        >>> p = init_graph_params(jax.random.PRNGKey(0), 4, 3, temperature=True)
        >>> print(sorted(p), p["wq"].shape)
        ['t', 'wk', 'wq'] (4, 3)
    """
    key = _check_key(key)
    k = check_int_in_range(num_nodes, "num_nodes", 2)
    dh = check_int_in_range(d_head, "d_head", 1)
    s = _check_rate(init_scale, "init_scale")
    kq, kk = jax.random.split(key)
    p = {"wq": (s / math.sqrt(k)) * jax.random.normal(kq, (k, dh), _F32),
         "wk": (s / math.sqrt(k)) * jax.random.normal(kk, (k, dh), _F32)}
    if temperature:
        p["t"] = jnp.zeros((k,), _F32)
    return p


def node_temperature(params: dict) -> jax.Array:
    r"""Query inverse temperature of every node, :math:`\tau_i = 1 + \tanh t_i \in (0, 2)`.

    This is :func:`softmax_stability.temperature.ssa_temperature` with the token feature linear in
    the one-hot token, :math:`f(e_i) = t_i` (ours: simpler than the reproductions' weight-shared
    :math:`u^\top\operatorname{GELU}(W_q^\top x)`, which ties the temperature to :math:`\|W_q\|`),
    and the position part frozen at :math:`\alpha = 0`: every query sees all :math:`n = K` keys, so
    :math:`\alpha\ln K` would only be a global rescaling of the logits that absorbs the norm of
    :math:`W` (we observed exactly that in trial runs) instead of a per-query selectivity.
    Parameters without ``t`` (vanilla) give :math:`\tau\equiv1`.

    Example:
        >>> import jax
        >>> from softmax_stability.experiments.ssa_toy import init_graph_params, node_temperature
        >>> print(node_temperature(init_graph_params(jax.random.PRNGKey(0), 3, 2, temperature=True)))
        [1. 1. 1.]
    """
    wq = params["wq"]
    k = wq.shape[0]
    if "t" not in params:
        return jnp.ones((k,), wq.dtype)
    f = params["t"]  # token feature linear in the one-hot token: f(e_i) = t_i
    # position part frozen (alpha = 0): every query sees n = K keys, so it would be a global scale
    return ssa_temperature(jnp.asarray(k, wq.dtype), jnp.zeros((), wq.dtype), f, parametrisation="linear")


def graph_log_probs(params: dict) -> jax.Array:
    r"""Log of the learned transition matrix,
    :math:`\log\hat P_{i\cdot} = \log\operatorname{softmax}_j\big(\tau_i\,(W_qW_k^\top)_{ij}/\sqrt{d_h}\big)`.

    The model (ours): tokens are one-hot (:math:`E = I_K`); the query is the current token, the
    context holds every vocabulary token once, and the prediction of the next token is the
    attention distribution over the context (a pointer head, no positional information). The
    query temperature :math:`\tau_i` is a row scale of the logits (docs/notes/selective_attention.md §1.6); vanilla has
    :math:`\tau\equiv1`. So :math:`\hat P V` is
    :func:`softmax_stability.attention.dot_product_attention` of queries :math:`W_q`, keys
    :math:`W_k`, values :math:`V` with ``query_temperature`` :math:`\tau` (tested with
    :math:`V = I_K`).

    Returns:
        ``(K, K)`` log-probabilities, each row normalised.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from softmax_stability.experiments.ssa_toy import init_graph_params, graph_log_probs
        >>> p = init_graph_params(jax.random.PRNGKey(0), 5, 4, temperature=False)
        >>> print(jnp.allclose(jnp.exp(graph_log_probs(p)).sum(1), 1.0, atol=1e-6))
        True
    """
    return _pointer_log_probs(params, math.sqrt(params["wq"].shape[1]))


def _pointer_log_probs(params: dict, sqrt_dh: float | None) -> jax.Array:
    """log softmax_j(tau_i (W_q W_k^T)_ij / sqrt_dh) with tau = node_temperature(params); the one
    attention of the graph model (sqrt_dh = sqrt(d_head)) and of the map fitting (None: no scale).
    Equal to log of attention.dot_product_attention(W_q, W_k, I_K, query_temperature=tau) (tests)."""
    logits = params["wq"] @ params["wk"].T
    if sqrt_dh is not None:
        logits = logits / sqrt_dh
    # log_softmax rather than log(attention weights): the cross-entropy needs tiny weights' logs
    return jax.nn.log_softmax(node_temperature(params)[:, None] * logits, axis=-1)


def graph_cross_entropy(p_true: Any, log_p: Any) -> jax.Array:
    r"""Population next-token cross-entropy with current tokens uniform over nodes,
    :math:`\frac1K\sum_i\sum_j P^\star_{ij}(-\log\hat P_{ij})` (nats). Its minimum over models is the
    mean row entropy of :math:`P^\star` (:math:`\frac1K\sum_i\ln d_i` when :math:`\eta = 0`).

    Example:
        >>> import numpy as np
        >>> from softmax_stability.experiments.ssa_toy import graph_cross_entropy
        >>> p = np.array([[0.5, 0.5], [1.0, 0.0]])
        >>> print(round(float(graph_cross_entropy(p, np.log([[0.5, 0.5], [0.5, 0.5]]))), 6))  # ln 2
        0.693147
    """
    p = jnp.asarray(p_true)
    return -jnp.mean(jnp.sum(jnp.where(p > 0, p * log_p, 0.0), axis=-1))


def graph_l1_error(p_true: Any, p_hat: Any) -> jax.Array:
    r"""Mean row L1 error :math:`\frac1K\sum_i\|\hat P_{i\cdot}-P^\star_{i\cdot}\|_1\in[0,2]`.

    Example:
        >>> from softmax_stability.experiments.ssa_toy import graph_l1_error
        >>> print(float(graph_l1_error([[1.0, 0.0], [0.5, 0.5]], [[0.5, 0.5], [0.5, 0.5]])))
        0.5
    """
    return jnp.mean(jnp.sum(jnp.abs(jnp.asarray(p_hat) - jnp.asarray(p_true)), axis=-1))


@functools.partial(jax.jit, static_argnames=("steps", "batch_size", "learning_rate", "weight_decay"))
def _train_graph(params, p_true, key, *, steps, batch_size, learning_rate, weight_decay):
    k = p_true.shape[0]
    # cosine decay of the step size: the final iterate is not dominated by SGD noise
    opt = optax.adamw(optax.cosine_decay_schedule(learning_rate, steps), weight_decay=weight_decay)
    log_pt = jnp.log(jnp.clip(p_true, 1e-30, None))

    def loss_fn(prm, cur, nxt):
        return -jnp.mean(graph_log_probs(prm)[cur, nxt])

    def step(carry, t):
        prm, st = carry
        kc, kn = jax.random.split(jax.random.fold_in(key, t))
        cur = jax.random.randint(kc, (batch_size,), 0, k)  # current token uniform over nodes
        nxt = jax.random.categorical(kn, log_pt[cur])      # next token ~ P*[cur]
        loss, g = jax.value_and_grad(loss_fn)(prm, cur, nxt)
        upd, st = opt.update(g, st, prm)
        return (optax.apply_updates(prm, upd), st), loss

    (params, _), losses = jax.lax.scan(step, (params, opt.init(params)), jnp.arange(steps))
    return params, losses


def train_graph_model(key: Any, adjacency: Any, *, temperature: bool, steps: int = 2000,
                      batch_size: int = 128, learning_rate: float = 0.03, weight_decay: float = 0.3,
                      teleport: float = 0.1, d_head: int | None = None) -> dict:
    r"""Train the one-layer next-token model (:func:`graph_log_probs`) on transitions of a graph.

    Data (ours): each step draws ``batch_size`` fresh pairs, current token :math:`i` uniform over
    nodes and next token :math:`j\sim P^\star_{i\cdot}` (online, so there is no over-fitting); loss
    = mean next-token cross-entropy; optimiser AdamW (optax) with a cosine-decayed learning rate
    and the same learning rate and weight decay for vanilla and SSA (decay applies to every
    parameter, temperature ones included; it is what makes a large :math:`\|W\|` costly). One
    jitted ``lax.scan`` over the steps.

    Args:
        key: PRNG key (initialisation and data).
        adjacency: boolean ``(K, K)`` graph (:func:`random_graph`).
        temperature: False: vanilla (:math:`\tau\equiv1`); True: SSA query temperature
            (:func:`node_temperature`).
        steps, batch_size: ints >= 1.
        learning_rate: > 0. weight_decay: >= 0.
        teleport: :math:`\eta\in[0,1]` of :func:`transition_matrix`.
        d_head: head dimension (default ``K``).

    Returns:
        dict with ``p_true``, ``p_hat`` (``(K, K)``), ``cross_entropy``, ``min_cross_entropy``
        (the mean row entropy of :math:`P^\star`, the infimum of ``cross_entropy``), ``l1``
        (:func:`graph_l1_error`), ``tau`` (per node),
        ``degrees``, ``w_norm`` (:math:`\|W_qW_k^\top\|_2/\sqrt{d_h}`), ``losses`` (per step),
        ``params`` -- all as NumPy arrays / floats.

    Example:
        >>> import jax
        >>> from softmax_stability.experiments import ssa_toy as st
        >>> a = st.random_graph(jax.random.PRNGKey(0), st.degree_levels(4, (1, 2)))
        >>> r = st.train_graph_model(jax.random.PRNGKey(1), a, temperature=True, steps=50)
        >>> print(r["losses"][-10:].mean() < r["losses"][:10].mean())
        True
    """
    key = _check_key(key)
    adj = np.asarray(adjacency)
    if adj.dtype != np.bool_:
        raise TypeError(f"adjacency must be boolean, got dtype {adj.dtype}")
    p_true = transition_matrix(adj, teleport)
    k = p_true.shape[0]
    if k < 2:
        raise ValueError(f"adjacency must have K >= 2 nodes, got {k}")
    steps = check_int_in_range(steps, "steps", 1)
    batch_size = check_int_in_range(batch_size, "batch_size", 1)
    lr = _check_rate(learning_rate, "learning_rate")
    wd = _check_nonneg(weight_decay, "weight_decay")
    dh = k if d_head is None else check_int_in_range(d_head, "d_head", 1)
    kinit, kdata = jax.random.split(key)
    params = init_graph_params(kinit, k, dh, temperature=bool(temperature))
    params, losses = _train_graph(params, p_true.astype(_F32), kdata, steps=steps, batch_size=batch_size,
                                  learning_rate=lr, weight_decay=wd)
    log_p = graph_log_probs(params)
    p_hat = jnp.exp(log_p)
    pt = np.asarray(p_true, dtype=np.float64)
    deg = adj.sum(axis=1)
    w = np.asarray(params["wq"] @ params["wk"].T, dtype=np.float64) / math.sqrt(dh)
    return {
        "p_true": pt,
        "p_hat": np.asarray(p_hat, dtype=np.float64),
        "cross_entropy": float(graph_cross_entropy(pt, np.asarray(log_p, np.float64))),
        "min_cross_entropy": float(-np.mean(np.sum(pt * np.log(pt, where=pt > 0, out=np.zeros_like(pt)),
                                                    axis=1))),
        "l1": float(graph_l1_error(pt, np.asarray(p_hat, np.float64))),
        "tau": np.asarray(node_temperature(params), dtype=np.float64),
        "degrees": deg,
        "w_norm": float(np.linalg.norm(w, 2)),
        "losses": np.asarray(losses, dtype=np.float64),
        "params": jax.tree_util.tree_map(np.asarray, params),
    }


def graph_experiment(key: Any, num_nodes: int = 16, levels: Sequence[int] = (1, 2, 4, 8), *,
                     seeds: int = 3, **train_kwargs: Any) -> list[dict]:
    r"""Vanilla vs SSA on ``seeds`` independent graphs (seed ``s``: graph and training keys folded
    from ``key``; both models see the same graph and the same data stream).

    Returns:
        list (one per seed) of ``{"vanilla": result, "ssa": result}`` with results of
        :func:`train_graph_model`.
    """
    key = _check_key(key)
    seeds = check_int_in_range(seeds, "seeds", 1)
    deg = degree_levels(num_nodes, levels)
    out = []
    for s in range(seeds):
        kg, kt = jax.random.split(jax.random.fold_in(key, s))
        adj = np.asarray(random_graph(kg, deg))
        out.append({name: train_graph_model(kt, adj, temperature=t, **train_kwargs)
                    for name, t in (("vanilla", False), ("ssa", True))})
    return out


# ================================================================================================
# 2. Norm of W needed to fit target attention maps (SSA Fig. 2)
# ================================================================================================


@functools.partial(jax.jit, static_argnames=("temperature", "steps", "learning_rate", "eps"))
def _fit_map(key, target, *, temperature, steps, learning_rate, eps):
    k = target.shape[0]
    kq, kk = jax.random.split(key)
    s = 0.1 / math.sqrt(k)
    params = {"wq": s * jax.random.normal(kq, (k, k), target.dtype),
              "wk": s * jax.random.normal(kk, (k, k), target.dtype)}
    if temperature:
        params["t"] = jnp.zeros((k,), target.dtype)
    opt = optax.adam(learning_rate)

    def log_probs(prm):
        # the graph model's attention without the 1/sqrt(d) scale: tau_i = 1 + tanh t_i, position
        # part frozen at alpha = 0 (node_temperature); tau = 1 exactly without "t"
        return _pointer_log_probs(prm, None)

    def loss_fn(prm):
        return -jnp.mean(jnp.sum(jnp.where(target > 0, target * log_probs(prm), 0.0), axis=-1))

    def err_fn(prm):
        return jnp.max(jnp.sum(jnp.abs(jnp.exp(log_probs(prm)) - target), axis=-1))

    def step(carry, t):
        prm, st, hit, w_hit, t_hit = carry
        err = err_fn(prm)
        new = jnp.logical_and(jnp.logical_not(hit), err <= eps)
        w = prm["wq"] @ prm["wk"].T
        w_hit = jnp.where(new, w, w_hit)
        t_hit = jnp.where(new, t, t_hit)
        hit = jnp.logical_or(hit, new)
        g = jax.grad(loss_fn)(prm)
        upd, st = opt.update(g, st, prm)
        return (optax.apply_updates(prm, upd), st, hit, w_hit, t_hit), err

    init = (params, opt.init(params), jnp.asarray(False), jnp.zeros((k, k), target.dtype),
            jnp.asarray(-1, jnp.int32))
    (prm, _, hit, w_hit, t_hit), errs = jax.lax.scan(step, init, jnp.arange(steps, dtype=jnp.int32))
    return hit, jnp.linalg.norm(w_hit, 2), t_hit, errs[-1], node_temperature(prm)


def fit_attention_map(key: Any, target: Any, *, temperature: bool, steps: int = 500,
                      learning_rate: float = 0.02, eps: float = 0.2) -> dict:
    r"""Fit :math:`\hat P = \operatorname{softmax}_{\text{rows}}(\operatorname{diag}(\tau)\,W_qW_k^\top)`
    to a target attention map and report :math:`\|W_qW_k^\top\|_2` when the fit first reaches
    :math:`\max_i\|\hat P_{i\cdot}-P^\star_{i\cdot}\|_1\le\varepsilon`.

    Protocol (ours; the paper's is unknown): one-hot queries and keys (so the logit matrix is
    :math:`\operatorname{diag}(\tau)W`), :math:`W_q, W_k\in\mathbb R^{K\times K}` from
    :math:`N(0, 0.01/K)`, Adam on the mean row cross-entropy :math:`-\sum_j P^\star_{ij}\log\hat P_{ij}`
    from that small initialisation; the norm is read at the first step whose worst-row L1 error is
    :math:`\le\varepsilon` (gradient methods from a small start grow the norm gradually, so this is
    the norm the optimiser *needed*, not a certified minimum). With ``temperature`` each query has
    :math:`\tau_i = 1 + \tanh t_i\in(0,2)` (:func:`~softmax_stability.temperature.ssa_temperature`
    with the global position part frozen at :math:`\alpha=0`, so the temperature can only change
    the *relative* spikiness of the rows, not rescale :math:`W` globally), :math:`t_i` free, init 0.

    Args:
        key: PRNG key (initialisation).
        target: ``(K, K)`` row-stochastic target map.
        temperature: with or without the query temperature.
        steps: optimisation steps (int >= 1). learning_rate: > 0. eps: target worst-row L1 in (0, 2).

    Returns:
        dict: ``reached`` (bool), ``norm`` (:math:`\|W\|_2` at the first hit, NaN if not reached),
        ``step`` (first hit, -1 if none), ``final_error``, ``tau`` (final temperatures).

    Example:
        >>> import jax, numpy as np
        >>> from softmax_stability.experiments.ssa_toy import fit_attention_map
        >>> r = fit_attention_map(jax.random.PRNGKey(0), np.eye(3)[[1, 2, 0]], temperature=False, steps=400)
        >>> print(bool(r["reached"]), r["norm"] > 1)
        True True
    """
    key = _check_key(key)
    tgt = _check_target(target)
    steps = check_int_in_range(steps, "steps", 1)
    lr = _check_rate(learning_rate, "learning_rate")
    eps = _check_rate(eps, "eps")
    if eps >= 2:
        raise ValueError(f"eps must be in (0, 2) (L1 distance of distributions), got {eps}")
    hit, norm, t_hit, err, tau = _fit_map(key, jnp.asarray(tgt, _F32), temperature=bool(temperature),
                                          steps=steps, learning_rate=lr, eps=eps)
    hit = bool(hit)
    return {"reached": hit, "norm": float(norm) if hit else float("nan"), "step": int(t_hit),
            "final_error": float(err), "tau": np.asarray(tau, np.float64)}


def _check_target(target: Any) -> np.ndarray:
    t = np.asarray(target, dtype=np.float64)
    if t.ndim != 2 or t.shape[0] != t.shape[1] or t.shape[0] < 2:
        raise ValueError(f"target must be a square (K, K) map with K >= 2, got shape {t.shape}")
    if not np.all(np.isfinite(t)) or np.any(t < 0) or not np.allclose(t.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("target must be row-stochastic: finite, >= 0, every row summing to 1")
    return t


def norm_experiment(key: Any, num_maps: int = 64, num_nodes: int = 16, max_degree: int | None = None, *,
                    steps: int = 500, learning_rate: float = 0.02, eps: float = 0.2) -> dict:
    r"""SSA Fig. 2 reconstruction: :math:`\|W_qW_k^\top\|_2` needed to fit many random target maps,
    vanilla vs query temperature (:func:`fit_attention_map`, vmapped over maps).

    Targets (ours): target :math:`m` is :func:`transition_matrix` of :func:`random_graph` with
    i.i.d. degrees :math:`d_i\sim\mathrm U\{1,\dots,\text{max\_degree}\}` (default :math:`K/2`),
    i.e. rows uniform on supports of different sizes -- rows of different sparsity. Map :math:`m`
    uses the same initialisation key for both models.

    Returns:
        dict of NumPy arrays over maps: ``norm_vanilla``, ``norm_ssa`` (NaN where not reached),
        ``reached_vanilla``, ``reached_ssa``, ``steps_vanilla``, ``steps_ssa``, ``tau_ssa``
        (``(num_maps, K)``), ``degrees`` (``(num_maps, K)``).
    """
    key = _check_key(key)
    m = check_int_in_range(num_maps, "num_maps", 1)
    k = check_int_in_range(num_nodes, "num_nodes", 2)
    dmax = max(1, k // 2) if max_degree is None else check_int_in_range(max_degree, "max_degree", 1, k - 1)
    steps = check_int_in_range(steps, "steps", 1)
    lr = _check_rate(learning_rate, "learning_rate")
    eps = _check_rate(eps, "eps")
    if eps >= 2:
        raise ValueError(f"eps must be in (0, 2), got {eps}")
    kd, kg, ki = jax.random.split(key, 3)
    degs = np.asarray(jax.random.randint(kd, (m, k), 1, dmax + 1))
    adj = np.asarray(jax.jit(jax.vmap(_graph))(jax.random.split(kg, m), jnp.asarray(degs)))
    targets = jnp.asarray(adj / degs[:, :, None], _F32)  # transition_matrix, teleport 0, per map
    ikeys = jax.random.split(ki, m)
    out = {"degrees": degs}
    for name, temp in (("vanilla", False), ("ssa", True)):
        fit = jax.vmap(functools.partial(_fit_map, temperature=temp, steps=steps, learning_rate=lr, eps=eps))
        hit, norm, t_hit, err, tau = fit(ikeys, targets)
        hit = np.asarray(hit)
        out[f"reached_{name}"] = hit
        out[f"norm_{name}"] = np.where(hit, np.asarray(norm, np.float64), np.nan)
        out[f"steps_{name}"] = np.asarray(t_hit)
        out[f"tau_{name}"] = np.asarray(tau, np.float64)
    return out


# ================================================================================================
# 3. Denoising with value selectivity (SSA Table 2)
# ================================================================================================
#
# Data model (ours; the paper's was not recovered), per sequence:
#   mu ~ N(0, s^2 I_d)                          the target
#   m ~ Uniform{0, ..., max_signal}             number of signal tokens; R = the first m positions
#   token j in R      : x_j = mu + sigma * xi_j,   flag b_j = 1
#   token j not in R  : x_j = sigma_n * xi_j,      flag b_j = 0     (xi_j ~ N(0, I_d) i.i.d.)
# The flags are visible; the target is mu.


def _check_denoise_args(n_tokens, dim, max_signal, signal_scale, signal_noise, noise_scale):
    n = check_int_in_range(n_tokens, "n_tokens", 1)
    d = check_int_in_range(dim, "dim", 1)
    ms = check_int_in_range(max_signal, "max_signal", 0, n)
    return (n, d, ms, _check_rate(signal_scale, "signal_scale"), _check_rate(signal_noise, "signal_noise"),
            _check_rate(noise_scale, "noise_scale"))


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4, 5, 6, 7, 8))
def _sample(key, batch, n, d, ms, s, sigma, sigma_n, dtype):
    km, kmu, kx = jax.random.split(key, 3)
    m = jax.random.randint(km, (batch,), 0, ms + 1)
    # signal tokens in the first m positions: every estimator here is permutation invariant (no
    # positional information), so this is the same as a uniformly random subset of size m
    flags = jnp.arange(n)[None, :] < m[:, None]
    mu = s * jax.random.normal(kmu, (batch, d), dtype)
    xi = jax.random.normal(kx, (batch, n, d), dtype)
    x = jnp.where(flags[..., None], mu[:, None, :] + sigma * xi, sigma_n * xi)
    return x, flags, mu


def sample_denoising(key: Any, batch: int, *, n_tokens: int = 16, dim: int = 4, max_signal: int = 8,
                     signal_scale: float = 1.0, signal_noise: float = 1.0, noise_scale: float = 2.0):
    r"""Draw denoising sequences.

    Data model (ours; the SSA paper's denoising model was not recovered). For each sequence:
    :math:`\mu\sim N(0, s^2 I_d)` is the target; the number of signal tokens is
    :math:`m\sim\mathrm U\{0,\dots,m_{\max}\}` and the signal set is :math:`R=\{0,\dots,m-1\}`
    (the first :math:`m` positions; every estimator here is permutation invariant, so this is
    equivalent to a uniformly random subset of size :math:`m`); signal tokens are :math:`x_j = \mu + \sigma\xi_j`
    with flag :math:`b_j = 1`, noise tokens :math:`x_j = \sigma_n\xi_j` with flag :math:`b_j = 0`,
    :math:`\xi_j\sim N(0, I_d)` i.i.d. The flags are visible. Noise tokens carry no information on
    :math:`\mu` and have large variance (:math:`\sigma_n` = ``noise_scale``), so a good estimator must
    suppress them *absolutely* -- and must output (near) 0 when :math:`m = 0`, which a convex
    combination of token values (softmax attention) cannot do.

    Args:
        key: PRNG key. batch: number of sequences.
        n_tokens: :math:`n`. dim: :math:`d`. max_signal: :math:`m_{\max}\in[0, n]`.
        signal_scale: :math:`s`. signal_noise: :math:`\sigma`. noise_scale: :math:`\sigma_n`.

    Returns:
        ``(x, flags, mu)``: ``(batch, n, d)`` float32, ``(batch, n)`` bool, ``(batch, d)`` float32.

    Example:
        >>> import jax
        >>> from softmax_stability.experiments.ssa_toy import sample_denoising
        >>> x, b, mu = sample_denoising(jax.random.PRNGKey(0), 3, n_tokens=5, dim=2, max_signal=2)
        >>> print(x.shape, b.shape, mu.shape, bool((b.sum(1) <= 2).all()))
        (3, 5, 2) (3, 5) (3, 2) True
    """
    key = _check_key(key)
    batch = check_int_in_range(batch, "batch", 1)
    n, d, ms, s, sig, sn = _check_denoise_args(n_tokens, dim, max_signal, signal_scale, signal_noise,
                                                noise_scale)
    return _sample(key, batch, n, d, ms, s, sig, sn, _F32)


def bayes_estimator(x: Any, flags: Any, *, signal_scale: float = 1.0, signal_noise: float = 1.0) -> jax.Array:
    r"""Bayes-optimal (posterior-mean) estimate of :math:`\mu` under :func:`sample_denoising`.

    Derivation (derived here, standard Gaussian conjugacy). Given the flags, the noise tokens are
    independent of :math:`\mu` (and :math:`R, m` are independent of :math:`\mu`), so the posterior
    depends only on the :math:`m` signal tokens, for which :math:`\bar x_R = \frac1m\sum_{j\in R}x_j
    \sim N(\mu, \frac{\sigma^2}{m}I)` is sufficient. With prior :math:`N(0, s^2I)`,

    .. math::
        \mathbb E[\mu\mid x, b] = \frac{m s^2}{m s^2 + \sigma^2}\,\bar x_R ,\qquad
        \operatorname{Cov}[\mu\mid x, b] = \frac{s^2\sigma^2}{m s^2+\sigma^2} I_d ,

    and for :math:`m = 0` the posterior is the prior (estimate 0, variance :math:`s^2`) -- the same
    formula with :math:`m\bar x_R := 0`. The posterior mean minimises the MSE among all estimators;
    its risk is :func:`bayes_risk`.

    Args:
        x: ``(..., n, d)`` tokens. flags: ``(..., n)`` bool, True = signal.
        signal_scale: :math:`s > 0`. signal_noise: :math:`\sigma > 0`.

    Returns:
        ``(..., d)`` estimate.

    Example:
        >>> import numpy as np
        >>> from softmax_stability.experiments.ssa_toy import bayes_estimator
        >>> x = np.array([[[2.0], [9.0], [4.0]]]); b = np.array([[True, False, True]])
        >>> print(bayes_estimator(x, b))  # m = 2, xbar = 3, shrink 2/3
        [[2.]]
    """
    s = _check_rate(signal_scale, "signal_scale")
    sig = _check_rate(signal_noise, "signal_noise")
    x = jnp.asarray(x)
    b = jnp.asarray(flags)
    if x.ndim < 2 or b.shape != x.shape[:-1]:
        raise ValueError(f"need x (..., n, d) and flags (..., n); got shapes {x.shape}, {b.shape}")
    b = b.astype(bool)
    m = b.sum(axis=-1).astype(x.dtype)[..., None]
    total = jnp.sum(jnp.where(b[..., None], x, 0.0), axis=-2)  # m * xbar_R
    return s**2 * total / (m * s**2 + sig**2)


def bayes_risk(*, dim: int = 4, max_signal: int = 8, signal_scale: float = 1.0,
               signal_noise: float = 1.0) -> float:
    r"""Exact per-coordinate MSE of :func:`bayes_estimator`,
    :math:`\frac{1}{m_{\max}+1}\sum_{m=0}^{m_{\max}}\frac{s^2\sigma^2}{m s^2+\sigma^2}` (the posterior
    variance averaged over :math:`m`; independent of :math:`d`, :math:`n`, :math:`\sigma_n`).

    Example:
        >>> from softmax_stability.experiments.ssa_toy import bayes_risk
        >>> print(round(bayes_risk(max_signal=1), 6))  # (1 + 1/2) / 2
        0.75
    """
    check_int_in_range(dim, "dim", 1)
    ms = check_int_in_range(max_signal, "max_signal", 0)
    s2 = _check_rate(signal_scale, "signal_scale") ** 2
    v = _check_rate(signal_noise, "signal_noise") ** 2
    return float(np.mean([s2 * v / (m * s2 + v) for m in range(ms + 1)]))


def naive_average(x: Any) -> jax.Array:
    r"""Naive averaging: the plain mean of all :math:`n` token vectors, flags ignored
    (uniform attention with identity values). Its risk is :func:`naive_risk`.

    Example:
        >>> from softmax_stability.experiments.ssa_toy import naive_average
        >>> print(naive_average([[[1.0], [3.0]]]))
        [[2.]]
    """
    x = jnp.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"x must have shape (..., n, d), got {x.shape}")
    return jnp.mean(x, axis=-2)


def naive_risk(*, n_tokens: int = 16, max_signal: int = 8, signal_scale: float = 1.0,
               signal_noise: float = 1.0, noise_scale: float = 2.0) -> float:
    r"""Exact per-coordinate MSE of :func:`naive_average` (derived here):
    :math:`\hat\mu - \mu = -(1-\tfrac mn)\mu + \tfrac1n(\sigma\sum_{R}\xi_j + \sigma_n\sum_{R^c}\xi_j)`,
    independent terms, so the risk is
    :math:`\mathbb E_m\big[(1-\tfrac mn)^2 s^2 + (m\sigma^2 + (n-m)\sigma_n^2)/n^2\big]`.

    Example:
        >>> from softmax_stability.experiments.ssa_toy import naive_risk
        >>> print(round(naive_risk(n_tokens=1, max_signal=0, noise_scale=2.0), 6))  # s^2 + sigma_n^2
        5.0
    """
    n = check_int_in_range(n_tokens, "n_tokens", 1)
    ms = check_int_in_range(max_signal, "max_signal", 0, n)
    s2 = _check_rate(signal_scale, "signal_scale") ** 2
    v = _check_rate(signal_noise, "signal_noise") ** 2
    vn = _check_rate(noise_scale, "noise_scale") ** 2
    return float(np.mean([(1 - m / n) ** 2 * s2 + (m * v + (n - m) * vn) / n**2 for m in range(ms + 1)]))


def init_denoiser(key: Any, dim: int, d_head: int = 8, *, value_temperature: bool) -> dict:
    r"""Parameters of the one-head denoising attention (:func:`denoiser_apply`): ``q`` (``d_head``),
    ``wk`` (``(d+1, d_head)``), ``wv`` (``(d+1, d)``) from :math:`N(0, 1/(d+1))` (``q`` from
    :math:`N(0,1/d_h)`); with ``value_temperature`` also ``alpha = 0``, ``u = 0`` (``(d+1,)``),
    ``c = 0`` so that :math:`\tau_v\equiv1` at init.
    """
    key = _check_key(key)
    d = check_int_in_range(dim, "dim", 1)
    dh = check_int_in_range(d_head, "d_head", 1)
    k1, k2, k3 = jax.random.split(key, 3)
    p = {"q": jax.random.normal(k1, (dh,), _F32) / math.sqrt(dh),
         "wk": jax.random.normal(k2, (d + 1, dh), _F32) / math.sqrt(d + 1),
         "wv": jax.random.normal(k3, (d + 1, d), _F32) / math.sqrt(d + 1)}
    if value_temperature:
        p["alpha"] = jnp.zeros((), _F32)
        p["u"] = jnp.zeros((d + 1,), _F32)
        p["c"] = jnp.zeros((), _F32)
    return p


def denoiser_apply(params: dict, x: Any, flags: Any) -> jax.Array:
    r"""One-head attention read-out of a sequence, optionally with a value temperature.

    .. math::
        h_j = (x_j, b_j)\in\mathbb R^{d+1},\quad
        a = \operatorname{softmax}_j\!\Big(\frac{q^\top W_k^\top h_j}{\sqrt{d_h}}\Big),\quad
        \hat\mu = \sum_j a_j\,\tau_v(h_j)\,W_v^\top h_j,

    with a learned query :math:`q` (the target is a sequence-level quantity),
    :math:`\tau_v(h) = 1 + \alpha\ln n + \tanh(u^\top h + c)`
    (:func:`~softmax_stability.temperature.ssa_temperature`, ``"linear"`` gain, token feature
    linear in :math:`h` -- ours, the paper's feature map for this toy is unknown) when the
    parameters hold ``alpha`` (value-selective attention), and :math:`\tau_v\equiv1` (vanilla)
    otherwise. The value temperature gates each *key's value* (docs/notes/selective_attention.md §1.6), so noise tokens can be
    removed entirely and the output can be 0, while vanilla output is a convex combination of
    :math:`W_v^\top h_j`. Where :math:`\tau_v > 0` this is
    :func:`softmax_stability.attention.dot_product_attention` with query :math:`q`, keys
    :math:`W_k^\top h_j`, values :math:`W_v^\top h_j`, ``scale`` :math:`1/\sqrt{d_h}` and
    ``value_temperature`` :math:`\tau_v` (tested); the gate is written out here because it may
    reach 0 or below, which that function does not accept.

    Returns:
        ``(..., d)`` estimate of :math:`\mu`.
    """
    x = jnp.asarray(x)
    b = jnp.asarray(flags).astype(x.dtype)
    h = jnp.concatenate([x, b[..., None]], axis=-1)
    dh = params["q"].shape[0]
    logits = (h @ params["wk"]) @ params["q"] / math.sqrt(dh)
    a = jax.nn.softmax(logits, axis=-1)
    v = h @ params["wv"]
    if "alpha" in params:
        n = jnp.asarray(x.shape[-2], x.dtype)
        tau = ssa_temperature(n, params["alpha"], h @ params["u"] + params["c"], parametrisation="linear")
        v = tau[..., None] * v
    return jnp.einsum("...j,...jd->...d", a, v)


@functools.partial(jax.jit, static_argnames=("value_temperature", "steps", "batch_size", "learning_rate",
                                             "data"))
def _train_denoiser(key, *, value_temperature, steps, batch_size, learning_rate, data):
    n, d, ms, s, sig, sn = data
    kinit, kdata = jax.random.split(key)
    params = init_denoiser(kinit, d, value_temperature=value_temperature)
    opt = optax.adam(learning_rate)

    def loss_fn(prm, x, b, mu):
        return jnp.mean((denoiser_apply(prm, x, b) - mu) ** 2)

    def step(carry, t):
        prm, st = carry
        x, b, mu = _sample(jax.random.fold_in(kdata, t), batch_size, n, d, ms, s, sig, sn, _F32)
        loss, g = jax.value_and_grad(loss_fn)(prm, x, b, mu)
        upd, st = opt.update(g, st, prm)
        return (optax.apply_updates(prm, upd), st), loss

    (params, _), losses = jax.lax.scan(step, (params, opt.init(params)), jnp.arange(steps))
    return params, losses


def train_denoiser(key: Any, *, value_temperature: bool, steps: int = 2000, batch_size: int = 256,
                   learning_rate: float = 0.01, n_tokens: int = 16, dim: int = 4, max_signal: int = 8,
                   signal_scale: float = 1.0, signal_noise: float = 1.0,
                   noise_scale: float = 2.0) -> tuple[dict, np.ndarray]:
    r"""Train :func:`denoiser_apply` (vanilla or value-selective) by Adam on the per-coordinate MSE,
    fresh batches of :func:`sample_denoising` every step (one jitted ``lax.scan``).

    Returns:
        ``(params, losses)`` -- the trained parameters and the per-step training loss.

    Example:
        >>> import jax
        >>> from softmax_stability.experiments.ssa_toy import train_denoiser
        >>> p, losses = train_denoiser(jax.random.PRNGKey(0), value_temperature=True, steps=100)
        >>> print(losses[-20:].mean() < losses[:20].mean())
        True
    """
    key = _check_key(key)
    data = _check_denoise_args(n_tokens, dim, max_signal, signal_scale, signal_noise, noise_scale)
    steps = check_int_in_range(steps, "steps", 1)
    batch_size = check_int_in_range(batch_size, "batch_size", 1)
    lr = _check_rate(learning_rate, "learning_rate")
    params, losses = _train_denoiser(key, value_temperature=bool(value_temperature), steps=steps,
                                     batch_size=batch_size, learning_rate=lr, data=data)
    return params, np.asarray(losses, np.float64)


def denoising_experiment(key: Any, *, steps: int = 2000, batch_size: int = 256, test_size: int = 20000,
                         learning_rate: float = 0.01, n_tokens: int = 16, dim: int = 4, max_signal: int = 8,
                         signal_scale: float = 1.0, signal_noise: float = 1.0,
                         noise_scale: float = 2.0) -> dict:
    r"""SSA Table 2 reconstruction: per-coordinate MSE of vanilla attention, value-selective
    attention, naive averaging and the Bayes-optimal estimator on one held-out test set.

    Returns:
        dict ``{estimator: {"mse", "se", "exact"}}`` for ``"vanilla"``, ``"value_selective"``,
        ``"naive"``, ``"bayes"``: Monte-Carlo MSE on ``test_size`` sequences, its standard error
        (over sequences), and the exact risk where a closed form exists (naive, Bayes; else None);
        plus ``"settings"``.
    """
    key = _check_key(key)
    data = _check_denoise_args(n_tokens, dim, max_signal, signal_scale, signal_noise, noise_scale)
    test_size = check_int_in_range(test_size, "test_size", 2)
    kv, ks, kt = jax.random.split(key, 3)
    common = dict(steps=steps, batch_size=batch_size, learning_rate=learning_rate, n_tokens=n_tokens, dim=dim,
                  max_signal=max_signal, signal_scale=signal_scale, signal_noise=signal_noise,
                  noise_scale=noise_scale)
    pv, _ = train_denoiser(kv, value_temperature=False, **common)
    ps, _ = train_denoiser(ks, value_temperature=True, **common)
    n, d, ms, s, sig, sn = data
    x, b, mu = _sample(kt, test_size, n, d, ms, s, sig, sn, _F32)
    apply = jax.jit(denoiser_apply)
    preds = {"vanilla": apply(pv, x, b), "value_selective": apply(ps, x, b),
             "naive": naive_average(x), "bayes": bayes_estimator(x, b, signal_scale=s, signal_noise=sig)}
    exact = {"vanilla": None, "value_selective": None,
             "naive": naive_risk(n_tokens=n, max_signal=ms, signal_scale=s, signal_noise=sig, noise_scale=sn),
             "bayes": bayes_risk(dim=d, max_signal=ms, signal_scale=s, signal_noise=sig)}
    out: dict[str, Any] = {}
    for name, pred in preds.items():
        per_seq = np.asarray(jnp.mean((pred - mu) ** 2, axis=-1), np.float64)
        out[name] = {"mse": float(per_seq.mean()), "se": float(per_seq.std(ddof=1) / math.sqrt(test_size)),
                     "exact": exact[name]}
    out["settings"] = dict(common, test_size=test_size)
    return out


# ================================================================================================
# Graph runs of the figures ssa_fig3 and ssa_table1, and the measured direction of tau vs degree
# ================================================================================================

#: training settings of the graph runs behind ``ssa_fig3`` / ``ssa_table1`` (every profile)
GRAPH_TRAIN = dict(learning_rate=0.03, weight_decay=0.3, teleport=0.1)
TAU_DEGREE_EXPECTATION = ("docs/notes/selective_attention.md §5 item 21 expects τ to fall with the degree "
                          "(fewer neighbours, larger τ)")


def graph_settings(profile: str) -> dict:
    """Sizes of the graph runs per profile (shared by ssa_fig3 and ssa_table1).

    Example:
      >>> graph_settings("quick")["num_nodes"]
      16
    """
    if profile == "smoke":
        return dict(num_nodes=8, levels=(1, 2, 4), seeds=2, steps=200, batch_size=64)
    if profile == "quick":
        return dict(num_nodes=16, levels=(1, 2, 4, 8), seeds=5, steps=1500, batch_size=128)
    if profile == "full":
        return dict(num_nodes=32, levels=(1, 2, 4, 8, 16), seeds=10, steps=5000, batch_size=256)
    raise ValueError(f"profile must be one of smoke, quick, full; got {profile!r}")


@functools.lru_cache(maxsize=4)
def _graph_runs(seed: int, key_items: tuple):
    kw = dict(key_items)
    levels = kw.pop("levels")
    return graph_experiment(jax.random.PRNGKey(seed), kw.pop("num_nodes"), levels,
                            seeds=kw.pop("seeds"), **kw)


def graph_runs(profile: str, seed: int) -> tuple[dict, list[dict]]:
    """The vanilla-vs-SSA graph runs of a profile and seed, computed once per process.

    Returns:
        ``(settings, runs)``: the settings (:func:`graph_settings` and :data:`GRAPH_TRAIN`) and
        the result of :func:`graph_experiment` with them.
    """
    s = dict(graph_settings(profile), **GRAPH_TRAIN)
    return s, _graph_runs(seed, tuple(sorted(s.items())))


def tau_degree_trend(degrees, taus) -> dict:
    """Direction of the learned temperature against the node degree, measured over graphs.

    Args:
        degrees, taus: one 1-D array per graph (out-degree and learned τ of every node).

    Returns:
        dict ``slope`` (mean over graphs of the least-squares slope of τ on log2(degree), per
        doubling of the degree), ``se`` (its standard error over graphs; NaN for one graph),
        ``graphs``, ``direction`` ("rises", "falls" or "none": |slope| <= 2 se; one graph: the
        sign), ``agrees`` (with ``docs/notes/selective_attention.md`` §5 item 21, which expects "falls"; None for "none")
        and ``text``, one sentence saying all of it.
    """
    slopes = []
    for d, t in zip(degrees, taus):
        x = np.log2(np.asarray(d, float))
        t = np.asarray(t, float)
        xc = x - x.mean()
        ss = float(np.sum(xc * xc))
        slopes.append(float(np.sum(xc * (t - t.mean())) / ss) if ss > 0 else 0.0)
    slopes = np.asarray(slopes)
    g = slopes.size
    slope = float(slopes.mean())
    se = float(slopes.std(ddof=1) / np.sqrt(g)) if g > 1 else float("nan")
    clear = slope != 0 and (g == 1 or abs(slope) > 2 * se)
    direction = ("rises" if slope > 0 else "falls") if clear else "none"
    agrees = None if direction == "none" else direction == "falls"
    est = f"{slope:+.3f} ± {se:.3f} per doubling of the degree, mean ± s.e. over {g} graphs" if g > 1 else \
          f"{slope:+.3f} per doubling of the degree, one graph"
    if direction == "none":
        text = f"Learned τ shows no clear trend with the out-degree ({est}); {TAU_DEGREE_EXPECTATION}."
    else:
        verdict = "agreeing with" if agrees else "DISAGREEING with"
        text = (f"Learned τ {direction} with the out-degree ({est}), {verdict} the expectation: "
                f"{TAU_DEGREE_EXPECTATION}.")
    return dict(slope=slope, se=se, graphs=g, direction=direction, agrees=agrees, text=text)


def runs_trend(runs) -> dict:
    """:func:`tau_degree_trend` of the SSA model over all graphs of :func:`graph_runs`."""
    return tau_degree_trend([r["ssa"]["degrees"] for r in runs], [r["ssa"]["tau"] for r in runs])
