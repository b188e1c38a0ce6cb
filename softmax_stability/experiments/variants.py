r"""Attention variants of the Semantic Focus experiments, by name.

Names follow the SF authors' plot labels (Ram et al. 2025, ``github:rithram/spartan``; see
``docs/notes/semantic_focus.md`` §1.3), case-insensitive:

========================  =====================================================================
``FULL``                  softmax over all keys
``TOPK(k)``               input-dependent: softmax over the ``k`` largest logits of each query
``BAND(k)`` / ``BAND(k):g``  input-agnostic banded window of ``k`` keys, ``g`` global tokens
``BLOC(k)`` / ``BLOC(k):g``  input-agnostic block-local blocks of ``k`` tokens, ``g`` global tokens
``BOTK(k)``               softmax over the ``k`` *smallest* logits (authors' ``botk`` control)
``RND(k)``                ``k`` keys drawn uniformly *with replacement* per query and call
                          (authors' ``rnd`` control; duplicates give fewer than ``k`` keys)
========================  =====================================================================

As in the authors' data pipeline, a masked variant pads the sequence with PAD tokens up to a
multiple of ``k`` (``datasets.lenupdate``) and then appends ``g`` global tokens, each with its own
token id. FULL pads nothing. Global tokens are allowed for BAND and BLOC only.
"""

from __future__ import annotations

import dataclasses
import re

from softmax_stability._checks import check_int_in_range

__all__ = ["Variant", "parse_variant", "VARIANT_KINDS", "EXAMPLE_VARIANTS", "padded_length"]

VARIANT_KINDS = ("FULL", "TOPK", "BAND", "BLOC", "BOTK", "RND")
EXAMPLE_VARIANTS = ("FULL", "TOPK(5)", "BAND(5)", "BAND(5):1", "BAND(5):3", "BLOC(5)", "BLOC(5):1",
                    "BLOC(5):3", "BOTK(5)", "RND(5)")
_PATTERN = re.compile(r"^\s*([A-Za-z]+)\s*(?:\(\s*(\d+)\s*\))?\s*(?::\s*(\d+))?\s*$")
_VALID_HELP = ("valid variants: FULL, TOPK(k), BAND(k), BAND(k):g, BLOC(k), BLOC(k):g, BOTK(k), RND(k) "
               "with integers k >= 1 and g >= 0 (e.g. " + ", ".join(EXAMPLE_VARIANTS) + ")")


@dataclasses.dataclass(frozen=True)
class Variant:
    """One attention variant: ``kind`` in :data:`VARIANT_KINDS`, mask size ``k`` (None for FULL) and
    the number of global tokens."""

    kind: str
    k: int | None = None
    global_tokens: int = 0

    def __post_init__(self):
        if self.kind not in VARIANT_KINDS:
            raise ValueError(f"unknown variant kind {self.kind!r}; {_VALID_HELP}")
        if self.kind == "FULL":
            if self.k is not None or self.global_tokens:
                raise ValueError("FULL takes no mask size and no global tokens")
        else:
            if self.k is None:
                raise ValueError(f"{self.kind} needs a mask size k, e.g. {self.kind}(5)")
            check_int_in_range(self.k, "k", 1)
        check_int_in_range(self.global_tokens, "global_tokens", 0)
        if self.global_tokens and self.kind not in ("BAND", "BLOC"):
            raise ValueError(f"global tokens are only used with BAND and BLOC (as in the SF authors' code), "
                             f"got {self.kind} with {self.global_tokens}")

    @property
    def name(self) -> str:
        """Canonical label, e.g. ``BAND(5):1``."""
        if self.kind == "FULL":
            return "FULL"
        return f"{self.kind}({self.k})" + (f":{self.global_tokens}" if self.global_tokens else "")

    @property
    def input_dependent(self) -> bool:
        """True for the logit-dependent patterns (TOPK, BOTK)."""
        return self.kind in ("TOPK", "BOTK")

    def __str__(self) -> str:
        return self.name


def parse_variant(name: str | Variant) -> Variant:
    """Parse a variant label (case-insensitive), e.g. ``"TOPK(5)"`` or ``"bloc(5):1"``.

    Raises:
      ValueError: listing the valid names, for anything else.

    Example:
      >>> parse_variant("band(5):1")
      Variant(kind='BAND', k=5, global_tokens=1)
      >>> parse_variant("FULL").name
      'FULL'
    """
    if isinstance(name, Variant):
        return name
    if not isinstance(name, str):
        raise TypeError(f"variant must be a string such as 'TOPK(5)', got {type(name).__name__}")
    m = _PATTERN.match(name)
    if m is None or m.group(1).upper() not in VARIANT_KINDS:
        raise ValueError(f"unknown variant {name!r}; {_VALID_HELP}")
    kind = m.group(1).upper()
    k = int(m.group(2)) if m.group(2) is not None else None
    g = int(m.group(3)) if m.group(3) is not None else 0
    return Variant(kind, k, g)


def padded_length(n: int, variant: Variant | str) -> int:
    """Sequence length the model sees: ``n`` rounded up to a multiple of ``k`` (masked variants,
    as the authors' ``lenupdate``) plus the global tokens.

    Raises:
      ValueError: if ``k`` exceeds the sequence length ``n``.

    Example:
      >>> padded_length(40, "BAND(9):3")
      48
    """
    v = parse_variant(variant)
    n = check_int_in_range(n, "n", 1)
    if v.kind == "FULL":
        return n
    if v.k > n:
        raise ValueError(f"mask size k={v.k} of {v.name} is larger than the sequence length n={n}; "
                         f"use 1 <= k <= {n}")
    return -(-n // v.k) * v.k + v.global_tokens
