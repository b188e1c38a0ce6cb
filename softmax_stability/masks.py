r"""Attention masks: input-agnostic (band, block, causal, global tokens) and input-dependent (top-k).

Every mask is boolean with ``True`` = *attend*: ``mask[i, j]`` says whether query ``i`` may put
weight on key ``j``. They plug into :func:`softmax_stability.maps.softmax` as ``where=mask``.

The static masks (:func:`band_mask`, :func:`block_mask`, :func:`causal_mask`) take Python ints,
are validated eagerly and return NumPy arrays, so they are compile-time constants under
``jax.jit``. :func:`topk_mask` depends on the logits and returns a JAX array.

The band and block rules, and the placement of global tokens, follow the Semantic Focus authors'
code (Ram et al. 2025, ``github:rithram/spartan``, ``attn_masks.py``: ``mask_window``,
``mask_block_local``, ``--ngtk``), as recorded in ``docs/notes/semantic_focus.md`` §1.3.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from softmax_stability import topk as _topk
from softmax_stability._checks import check_int_in_range

__all__ = ["band_mask", "block_mask", "causal_mask", "topk_mask"]


def _add_global_tokens(mask: np.ndarray, global_tokens: int) -> np.ndarray:
    """Append ``global_tokens`` rows/columns of ``True`` at the end (SF authors' ``--ngtk``)."""
    if global_tokens == 0:
        return mask
    n = mask.shape[0]
    out = np.ones((n + global_tokens, n + global_tokens), dtype=bool)
    out[:n, :n] = mask
    return out


def band_mask(n: int, k: int, *, global_tokens: int = 0) -> np.ndarray:
    r"""Banded (sliding-window) mask in which every query attends to exactly ``k`` keys.

    Query :math:`i` attends to the keys :math:`s_i, \dots, s_i + k - 1` with

    .. math::
        l = \lfloor (k-1)/2 \rfloor, \qquad s_i = \operatorname{clip}(i - l,\ 0,\ n - k),

    i.e. :math:`l` keys on the left and :math:`k-1-l` on the right, the window being shifted
    inwards at the sequence edges so it still holds :math:`k` keys. Hence interior keys have
    in-degree (column sum) :math:`k` and keys near the edges deviate: for :math:`n=40, k=5` the
    column sums are :math:`3,4,5,6,7,5,\dots,5,7,6,5,4,3`.

    Source: Ram et al. 2025 (Semantic Focus), BAND(k), as implemented in the authors' code
    (``attn_masks.mask_window``; docs/notes/semantic_focus.md §1.3).

    Args:
        n: number of tokens (queries = keys), ``n >= 1``.
        k: window size, ``1 <= k <= n``.
        global_tokens: number ``g >= 0`` of global tokens appended at the *end*; they attend
            to every token and every token attends to them.

    Returns:
        Boolean NumPy array of shape ``(n + g, n + g)``, ``True`` = attend.

    Example:
        >>> from softmax_stability.masks import band_mask
        >>> band_mask(5, 3).astype(int)
        array([[1, 1, 1, 0, 0],
               [1, 1, 1, 0, 0],
               [0, 1, 1, 1, 0],
               [0, 0, 1, 1, 1],
               [0, 0, 1, 1, 1]])
        >>> band_mask(40, 5).sum(axis=0)[:6].tolist()
        [3, 4, 5, 6, 7, 5]
    """
    n = check_int_in_range(n, "n", 1)
    k = check_int_in_range(k, "k", 1, n)
    global_tokens = check_int_in_range(global_tokens, "global_tokens", 0)
    left = (k - 1) // 2
    start = np.clip(np.arange(n) - left, 0, n - k)
    j = np.arange(n)
    mask = (j[None, :] >= start[:, None]) & (j[None, :] < start[:, None] + k)
    return _add_global_tokens(mask, global_tokens)


def block_mask(n: int, k: int, *, global_tokens: int = 0) -> np.ndarray:
    r"""Block-diagonal (block-local) mask with blocks of ``k`` consecutive tokens.

    .. math::
        M_{ij} = \big[\lfloor i/k \rfloor = \lfloor j/k \rfloor\big].

    Blocks start at token 0; when ``k`` does not divide ``n`` the last block is shorter
    (``n mod k`` tokens), as in the authors' loop.

    Source: Ram et al. 2025 (Semantic Focus), BLOC(k) (``attn_masks.mask_block_local``;
    docs/notes/semantic_focus.md §1.3).

    Args:
        n: number of tokens, ``n >= 1``.
        k: block size, ``1 <= k <= n``.
        global_tokens: number ``g >= 0`` of global tokens appended at the end (attend to all,
            attended by all).

    Returns:
        Boolean NumPy array of shape ``(n + g, n + g)``, ``True`` = attend.

    Example:
        >>> from softmax_stability.masks import block_mask
        >>> block_mask(5, 2, global_tokens=1).astype(int)
        array([[1, 1, 0, 0, 0, 1],
               [1, 1, 0, 0, 0, 1],
               [0, 0, 1, 1, 0, 1],
               [0, 0, 1, 1, 0, 1],
               [0, 0, 0, 0, 1, 1],
               [1, 1, 1, 1, 1, 1]])
    """
    n = check_int_in_range(n, "n", 1)
    k = check_int_in_range(k, "k", 1, n)
    global_tokens = check_int_in_range(global_tokens, "global_tokens", 0)
    block = np.arange(n) // k
    mask = block[:, None] == block[None, :]
    return _add_global_tokens(mask, global_tokens)


def causal_mask(n: int) -> np.ndarray:
    r"""Causal mask: query :math:`i` attends to keys :math:`j \le i` (diagonal included).

    .. math::
        M_{ij} = [\, j \le i \,].

    Args:
        n: number of tokens, ``n >= 1``.

    Returns:
        Boolean NumPy array of shape ``(n, n)``, lower-triangular, ``True`` = attend.

    Example:
        >>> from softmax_stability.masks import causal_mask
        >>> causal_mask(3).astype(int)
        array([[1, 0, 0],
               [1, 1, 0],
               [1, 1, 1]])
    """
    n = check_int_in_range(n, "n", 1)
    return np.tril(np.ones((n, n), dtype=bool))


def topk_mask(z: Any, k: int) -> jax.Array:
    r"""Input-dependent mask of the ``k`` largest logits along the last axis.

    .. math::
        M_{ij} = [\, j \in \operatorname{top}_k(z_{i\cdot}) \,].

    Ties are broken towards the **lower index**: among equal logits the ones with the smallest
    positions are kept, so exactly ``k`` entries per row are ``True`` (the ``ties="index"`` rule
    of :func:`softmax_stability.topk.topk_mask`, which this calls). ``NaN`` counts as
    larger than every number (the order of ``jax.lax.top_k`` and ``jnp.sort``), so a NaN logit
    is always selected and then propagates through :func:`softmax_stability.maps.topk_softmax`.
    ``k = n`` gives an all-``True`` mask; ``k > n`` raises ``ValueError`` (the library's one rule
    for every ``k``: :math:`1 \le k \le n`).

    Source: the TOPK(k) ("heavy hitter") variant of Ram et al. 2025 (docs/notes/semantic_focus.md §1.3);
    Gupta et al. 2021 (top-k attention). Their ``torch.topk`` leaves tie order unspecified; the
    lower-index rule is this library's choice.

    Args:
        z: logits, shape ``(..., n)``, any real dtype (integers are promoted); batched over the
            leading axes.
        k: number of keys kept per row, a static Python int in ``[1, n]`` (under ``jax.jit`` pass it
            as a static argument; a traced ``k`` raises ``TypeError``).

    Returns:
        Boolean JAX array with the shape of ``z``.

    Example:
        >>> import jax.numpy as jnp
        >>> from softmax_stability.masks import topk_mask
        >>> topk_mask(jnp.array([1.0, 3.0, 2.0, 3.0]), 2).tolist()
        [False, True, False, True]
        >>> topk_mask(jnp.array([1.0, 2.0, 2.0, 2.0]), 2).tolist()
        [False, True, True, False]
    """
    return _topk.topk_mask(z, k, ties="index")
