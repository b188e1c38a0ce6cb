r"""Measure the attention of a Flax or Equinox model, per layer and head, in one forward pass or
every N training steps.

The model uses this library's attention (:class:`softmax_stability.frameworks.flax.Attention`,
:class:`~softmax_stability.frameworks.flax.LinenAttention`,
:class:`softmax_stability.frameworks.equinox.MultiheadAttention`) and nothing else changes:

* :func:`collect` runs one forward pass and returns the output and, per attention layer, its
  record: the logits ``[..., heads, L, S]`` (after scale and temperatures), the mask the core
  applied (user mask and causal triangle) and the per-row statistics of :func:`row_metrics`.
  NNX: the layers' ``collect_statistics`` switch and ``nnx.capture``; Linen: ``apply`` with
  ``mutable=["intermediates"]``; Equinox (or any function of Equinox layers): :func:`capture`,
  which also composes with ``jax.vmap`` and ``jax.jit`` (``jax.vmap(capture(model))(x)``).
* :func:`summarize` turns records into a flat dict of NumPy arrays keyed
  ``"<layer>/h<head>/<metric>"`` (and ``"all/all/<metric>"`` pooled over every layer and head):

  - the SF Table 6 statistics of :func:`softmax_stability.focus.attention_statistics`
    (``delta_s``, ``delta_h``, ``sep``, ``beta``, ``lhs_304``, ``lhs_305``, one value per
    quantile level; with one model all four come from its own logits);
  - ``spectral_norm_mean`` / ``spectral_norm_max``: the per-row spectral norm of the normaliser's
    Jacobian with respect to the logits (:func:`softmax_stability.jacobian.spectral_norm` and its
    sparsemax / entmax counterparts);
  - ``normalized_entropy_mean``, ``max_weight_mean``, ``effective_support_mean``
    (:mod:`softmax_stability.dilution`),

  means and maxima over the rows that see at least one key (fully masked rows are left out).
* :class:`Probe` calls both every ``every`` steps, keeps the history, writes it as CSV
  (atomically) and plots it over the training steps.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from flax import nnx
    >>> from softmax_stability.frameworks import probe
    >>> from softmax_stability.frameworks.flax import Attention
    >>> layer = nnx.MultiHeadAttention(2, 8, decode=False, rngs=nnx.Rngs(0), attention_fn=Attention())
    >>> x = jax.random.normal(jax.random.PRNGKey(0), (1, 4, 8))
    >>> y, records = probe.collect(layer, x)
    >>> list(records), records["attention"]["logits"].shape
    (['attention'], (1, 2, 4, 4))
    >>> bool(records["attention"]["spectral_norm"].max() <= 0.5)  # per row: softmax's ||J||_2 <= 1/2
    True

    :func:`summarize` of these records (and :class:`Probe`, below) gives the per-head Table 6.
"""

from __future__ import annotations

import csv
import functools
import io
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from softmax_stability import _io, focus
from softmax_stability.frameworks import _core
from softmax_stability.frameworks._core import ROW_METRICS, row_metrics

__all__ = ["capture", "collect", "summarize", "Probe", "row_metrics", "TABLE6_METRICS", "ROW_METRICS"]

#: the SF Table 6 entries of :func:`softmax_stability.focus.attention_statistics` that are reported
TABLE6_METRICS = ("delta_s", "delta_h", "sep", "beta", "lhs_304", "lhs_305")
STATISTICS_NAME = _core.STATISTICS_NAME


def capture(fn: Callable) -> Callable:
    """Wrap ``fn`` (an Equinox model or any function calling the Equinox layers of
    :mod:`softmax_stability.frameworks.equinox`) so that it returns ``(output, records)``.

    ``records`` maps each layer's ``name`` (or ``"attention<i>"`` by call order; a repeated name
    gets ``"#<j>"``) to its record. Pure: it can be jitted, vmapped (put ``capture`` inside the
    ``vmap``), differentiated.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from softmax_stability.frameworks.equinox import MultiheadAttention
        >>> mha = MultiheadAttention(2, 8, key=jax.random.PRNGKey(0), name="attn")
        >>> x = jnp.ones((1, 4, 8))
        >>> y, rec = jax.vmap(capture(lambda x: mha(x, x, x)))(x)
        >>> rec["attn"]["logits"].shape
        (1, 2, 4, 4)
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")

    def wrapped(*args, **kwargs):
        rec: list = []
        _core._RECORDERS.append(rec)
        try:
            out = fn(*args, **kwargs)
        finally:
            _core._RECORDERS.pop()
        return out, _named(rec)

    return wrapped


def _named(items: list) -> dict:
    out: dict = {}
    for i, (name, rec) in enumerate(items):
        base = f"attention{i}" if name is None else str(name)
        key, j = base, 1
        while key in out:
            key, j = f"{base}#{j}", j + 1
        out[key] = rec
    return out


def _is_nnx(model) -> bool:
    try:
        from flax import nnx
    except ImportError:
        return False
    return isinstance(model, nnx.Module)


def _is_linen(model) -> bool:
    try:
        from flax import linen as nn
    except ImportError:
        return False
    return isinstance(model, nn.Module)


def _collect_nnx(model, args, kwargs):
    from flax import nnx

    from softmax_stability.frameworks.flax import Attention

    layers = [m for _, m in nnx.iter_modules(model) if isinstance(m, Attention)]
    if not layers:
        raise ValueError("the model has no softmax_stability.frameworks.flax.Attention layer to probe "
                         "(pass attention_fn=Attention(...) to its nnx.MultiHeadAttention layers)")
    old = [m.collect_statistics for m in layers]
    for m in layers:
        m.collect_statistics = True
    try:
        out, inter = nnx.capture(lambda mod, *a, **k: mod(*a, **k), nnx.Intermediate)(model, *args, **kwargs)
    finally:
        for m, o in zip(layers, old):
            m.collect_statistics = o
    items = []
    for path, var in nnx.to_flat_state(inter):
        if not path or path[-1] != STATISTICS_NAME:
            continue
        name = _layer_name([str(p) for p in path[:-1]])
        vals = var.get_value() if hasattr(var, "get_value") else var.value
        items.extend((name, v) for v in vals)
    return out, _named(items)


def _layer_name(path: list) -> str:
    """The attention layer's path (``blocks.0.attn``), without the ``attention_fn`` submodule."""
    if path and path[-1] == "attention_fn":
        path = path[:-1]
    return ".".join(path) or "attention"


def _walk_linen(tree, path, items):
    for key, val in tree.items():
        if key == STATISTICS_NAME:
            name = _layer_name(path)
            items.extend((name, v) for v in val)
        elif isinstance(val, dict) or hasattr(val, "items"):
            _walk_linen(val, path + [str(key)], items)


def collect(model: Any, *args, variables: Any = None, vmap: bool = False, **kwargs) -> tuple[Any, dict]:
    """One forward pass ``model(*args, **kwargs)`` and the records of its attention layers.

    Args:
        model: a Flax NNX module, a Linen module (then give ``variables``; the call is
          ``model.apply(variables, *args, mutable=["intermediates"], **kwargs)``), or an Equinox
          model / any callable using :mod:`softmax_stability.frameworks.equinox` layers.
        args, kwargs: the call's arguments.
        variables: Linen only.
        vmap: Equinox only: ``model`` takes one example; run ``jax.vmap(capture(model))`` over the
          leading axis of the arguments.

    Returns:
        ``(output, records)``: ``records[layer]`` holds ``logits``, ``mask`` and the
        :data:`ROW_METRICS`, with the batch axes in front of ``[heads, L, S]`` / ``[heads, L]``.
    """
    if vmap and (_is_nnx(model) or _is_linen(model)):
        raise ValueError("vmap is for Equinox models (Flax layers take batched inputs)")
    if _is_nnx(model):
        if variables is not None:
            raise ValueError("variables is for Linen modules; an NNX module holds its own state")
        return _collect_nnx(model, args, kwargs)
    if _is_linen(model):
        if variables is None:
            raise ValueError("a Linen module needs variables= (from model.init)")
        out, state = model.apply(variables, *args, mutable=["intermediates"], **kwargs)
        items: list = []
        _walk_linen(state.get("intermediates", {}), [], items)
        if not items:
            raise ValueError("the Linen model recorded no attention statistics (pass "
                             "attention_fn=LinenAttention(...) to its attention layers)")
        return out, _named(items)
    if variables is not None:
        raise ValueError("variables is for Linen modules")
    fn = capture(model)
    if vmap:
        fn = jax.vmap(fn)
    out, rec = fn(*args, **kwargs)
    if not rec:
        raise ValueError("the model recorded no attention statistics (it must use "
                         "softmax_stability.frameworks.equinox.MultiheadAttention layers)")
    return out, rec


def _check_k(k):
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    return int(k)


def _head_arrays(rec: dict) -> tuple[np.ndarray, np.ndarray, dict]:
    logits = np.asarray(rec["logits"], np.float32)
    N, L, S = logits.shape[-3:]
    logits = logits.reshape(-1, N, L, S)
    mask = np.broadcast_to(np.asarray(rec["mask"], bool), rec["logits"].shape).reshape(-1, N, L, S)
    rows = {m: np.asarray(rec[m], np.float64).reshape(-1, N, L) for m in ROW_METRICS}
    return logits, mask, rows


def _row_summary(rows: dict, valid: np.ndarray) -> dict:
    out = {}
    n = valid.sum()
    for m, v in rows.items():
        sel = v[valid]
        out[f"{m}_mean"] = np.float64(sel.mean()) if n else np.float64(np.nan)
        if m == "spectral_norm":
            out[f"{m}_max"] = np.float64(sel.max()) if n else np.float64(np.nan)
    return out


@functools.partial(jax.jit, static_argnames=("k", "quantiles"))
def _table6_heads(logits, mask, k, quantiles):
    """attention_statistics of each head of ``[B, N, L, S]`` logits: ``{metric: [N, Q]}``, one
    compilation per shape (eager calls per head cost seconds of dispatch and compilation)."""
    def one(lg, m):
        st = focus.attention_statistics(lg, k, where=m, quantiles=quantiles)
        return {name: st[name] for name in TABLE6_METRICS}
    return jax.vmap(one, in_axes=(1, 1))(logits, mask)


def _table6(logits, mask, k, quantiles):
    """Per head of ``[B, N, L, S]``: ``{metric: np.ndarray [N, Q]}``."""
    st = _table6_heads(jnp.asarray(logits), jnp.asarray(mask), k=min(k, logits.shape[-1]),
                       quantiles=tuple(float(v) for v in quantiles))
    return {m: np.asarray(st[m], np.float64) for m in TABLE6_METRICS}


def summarize(records: dict, *, k: int = 5, quantiles: Sequence[float] = (75, 90, 95, 100),
              per_head: bool = True, pooled: bool = True) -> dict[str, np.ndarray]:
    """Per layer and head (and pooled) statistics of :func:`collect`'s records.

    Args:
        records: from :func:`collect` or :func:`capture`.
        k: the top-k size of the SF statistics (clipped to the number of keys).
        quantiles: levels of :func:`softmax_stability.focus.attention_statistics`.
        per_head: include ``"<layer>/h<i>/<metric>"`` entries.
        pooled: include ``"all/all/<metric>"`` over every layer and head (SF Table 6 pools over
          blocks and heads), when all layers share ``L`` and ``S``.

    Returns:
        dict of NumPy arrays: Table 6 entries have one value per quantile level (``quantiles``
        and ``sep_quantiles`` give the levels), the others are scalars.
    """
    k = _check_k(k)
    if not isinstance(records, dict) or not records:
        raise ValueError("records must be a non-empty dict from collect() or capture()")
    q = np.asarray(quantiles, float).reshape(-1)
    out: dict[str, np.ndarray] = {"quantiles": q, "sep_quantiles": 100.0 - q}
    pool_l, pool_m, pool_rows = [], [], {m: [] for m in ROW_METRICS}
    for layer, rec in records.items():
        logits, mask, rows = _head_arrays(rec)
        valid = mask.any(axis=-1)
        if per_head:
            t6 = _table6(logits, mask, k, q)
            for h in range(logits.shape[1]):
                pre = f"{layer}/h{h}/"
                for name, val in t6.items():
                    out[pre + name] = val[h]
                for name, val in _row_summary({m: v[:, h] for m, v in rows.items()}, valid[:, h]).items():
                    out[pre + name] = val
        pool_l.append(logits.reshape((-1,) + logits.shape[-2:]))
        pool_m.append(mask.reshape((-1,) + mask.shape[-2:]))
        for m, v in rows.items():
            pool_rows[m].append(v.reshape(-1))
    if pooled and len({a.shape[-2:] for a in pool_l}) == 1:
        L = np.concatenate(pool_l)
        M = np.concatenate(pool_m)
        for name, val in _table6(L[:, None], M[:, None], k, q).items():
            out[f"all/all/{name}"] = val[0]
        valid = M.any(axis=-1).reshape(-1)
        rows = {m: np.concatenate(v) for m, v in pool_rows.items()}
        for name, val in _row_summary(rows, valid).items():
            out[f"all/all/{name}"] = val
    return out


class Probe:
    """Statistics of a model's attention every ``every`` training steps, kept as a history.

    Args:
        every: measure when ``step % every == 0`` (and whenever :meth:`measure` is called
          directly).
        k, quantiles: as in :func:`summarize`.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from flax import nnx
        >>> from softmax_stability.frameworks.flax import Attention
        >>> layer = nnx.MultiHeadAttention(2, 8, decode=False, rngs=nnx.Rngs(0), attention_fn=Attention())
        >>> p = Probe(every=2, k=2)
        >>> x = jnp.ones((1, 4, 8))
        >>> [p.maybe_measure(s, layer, x) is not None for s in range(3)]
        [True, False, True]
        >>> h = p.history_arrays()
        >>> h["step"].tolist(), h["attention/h0/delta_s"].shape  # 2 steps x 4 quantile levels
        ([0, 2], (2, 4))
    """

    def __init__(self, *, every: int = 1, k: int = 5, quantiles: Sequence[float] = (75, 90, 95, 100)):
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ValueError(f"every must be an int >= 1, got {every!r}")
        self.every = int(every)
        self.k = _check_k(k)
        self.quantiles = tuple(float(v) for v in quantiles)
        self.steps: list[int] = []
        self.history: list[dict[str, np.ndarray]] = []

    def measure(self, step: int, model: Any, *args, variables: Any = None, vmap: bool = False,
                **kwargs) -> dict[str, np.ndarray]:
        """Run :func:`collect` and :func:`summarize` now and append the result at ``step``."""
        _, rec = collect(model, *args, variables=variables, vmap=vmap, **kwargs)
        stats = summarize(rec, k=self.k, quantiles=self.quantiles)
        self.steps.append(int(step))
        self.history.append(stats)
        return stats

    def maybe_measure(self, step: int, model: Any, *args, variables: Any = None, vmap: bool = False, **kwargs):
        """:meth:`measure` when ``step % every == 0``, else None."""
        if int(step) % self.every:
            return None
        return self.measure(step, model, *args, variables=variables, vmap=vmap, **kwargs)

    def history_arrays(self) -> dict[str, np.ndarray]:
        """The history stacked over steps: ``{"step": [T], key: [T, ...]}``."""
        if not self.history:
            return {"step": np.zeros(0, int)}
        keys = list(self.history[-1])
        out = {"step": np.asarray(self.steps)}
        for key in keys:
            out[key] = np.stack([np.asarray(h.get(key, np.nan), np.float64) for h in self.history])
        return out

    def csv_text(self) -> str:
        """The history in long form: ``step, layer, head, metric, quantile, value``."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["step", "layer", "head", "metric", "quantile", "value"])
        for step, stats in zip(self.steps, self.history):
            q, sq = stats["quantiles"], stats["sep_quantiles"]
            for key, val in stats.items():
                if key in ("quantiles", "sep_quantiles"):
                    continue
                layer, head, metric = key.rsplit("/", 2)
                val = np.asarray(val)
                if val.ndim == 0:
                    w.writerow([step, layer, head, metric, "", repr(float(val))])
                else:
                    levels = sq if metric == "sep" else q
                    for lv, v in zip(levels, val):
                        w.writerow([step, layer, head, metric, f"{lv:g}", repr(float(v))])
        return buf.getvalue()

    def write_csv(self, path: str | Path) -> Path:
        """Write :meth:`csv_text` to ``path`` atomically."""
        return _io.atomic_write_text(path, self.csv_text())

    def plot(self, path: str | Path, *, metrics: Sequence[str] = ("spectral_norm_max", "spectral_norm_mean",
                                                                     "normalized_entropy_mean"),
             title: str | None = None) -> Path:
        """Plot each metric over the recorded steps, one line per layer and head (the pooled
        value in black), and save the figure (PNG or PDF by suffix) atomically."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        arr = self.history_arrays()
        if not self.history:
            raise ValueError("the probe has no measurements yet")
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.8), squeeze=False)
        cmap = plt.get_cmap("tab10")
        for ax, metric in zip(axes[0], metrics):
            keys = [k for k in arr if k.endswith("/" + metric)]
            if not keys:
                raise ValueError(f"no metric {metric!r} in the history; available: "
                                 f"{sorted({k.rsplit('/', 1)[-1] for k in arr if '/' in k})}")
            heads = [k for k in keys if not k.startswith("all/")]
            for i, key in enumerate(heads):
                ax.plot(arr["step"], arr[key], color=cmap(i % 10), lw=1.2, alpha=0.85,
                        label=key.rsplit("/", 1)[0])
            for key in keys:
                if key.startswith("all/"):
                    ax.plot(arr["step"], arr[key], color="black", lw=2.2, label="all layers/heads")
            ax.set_xlabel("training step")
            ax.set_ylabel(metric.replace("_", " "))
            ax.grid(alpha=0.3)
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=min(6, max(1, len(labels))), fontsize=8,
                   frameon=False)
        if title:
            fig.suptitle(title, fontsize=10)
        rows = math.ceil(len(labels) / 6)
        fig.tight_layout(rect=(0, 0.06 * rows + 0.02, 1, 0.95 if title else 1))
        path = Path(path)
        fmt = path.suffix.lstrip(".") or "png"
        _io.atomic_write_with(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=130))
        plt.close(fig)
        return path
