"""The claims registry: one checkable mathematical statement per entry.

A :class:`Claim` pairs a bound (the closed form the library states) with a measured value (autodiff
or an exact computation independent of the bound), a generator of random instances and,
optionally, an adversary that searches for instances where ``measure / bound`` is largest. The
verifier (:mod:`softmax_stability.claims._verify`) evaluates every claim vmapped and jitted in
float64 and reports the largest ratio it saw.

Families register their claims in ``softmax_stability/claims/<family>.py``; importing
:mod:`softmax_stability.claims` imports every family module.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Literal, Mapping, Sequence

import jax

__all__ = ["Claim", "register", "get", "all_claims", "Batch"]

Batch = Mapping[str, Any]  # dict of arrays with a leading instance axis
Kind = Literal["upper", "lower", "equal"]


@dataclasses.dataclass(frozen=True)
class Claim:
    """One checkable statement.

    Attributes:
      id: stable identifier, e.g. ``"J2-softmax-spectral-half"``.
      family: the concern it belongs to (``"softmax_jacobian"``, ``"focus"``, ...).
      statement: the statement in LaTeX.
      source: paper + equation, or ``"derived here"`` with a pointer.
      kind: ``"upper"`` (measure <= bound), ``"lower"`` (measure >= bound) or ``"equal"``
        (|measure - bound| <= atol + rtol |bound|).
      bound: one instance (dict of arrays) -> scalar bound. Traced under ``jit``/``vmap``.
      measure: one instance -> scalar measured value, computed independently of ``bound``.
      sample: ``key -> list of batches``; a batch is a dict of arrays with a leading instance
        axis (one batch per shape, e.g. per ``n``).
      adversary: ``key -> list of batches`` of instances found by maximising
        ``measure / bound`` (or ``None``).
      sharp: whether the bound is attained or approached; then the adversary (or the random
        instances) must reach ratio >= ``sharp_threshold``.
      proof: the ``proofs_check`` id deriving it symbolically, or ``None``.
      numeric_only_reason: why there is no symbolic check (required when ``proof`` is ``None``).
      rtol, atol: tolerance of the comparison, justified by the float64 error of the two sides.
      sharp_threshold: ratio the adversary must reach for a sharp claim.
    """

    id: str
    family: str
    statement: str
    source: str
    kind: Kind
    bound: Callable[[Batch], Any]
    measure: Callable[[Batch], Any]
    sample: Callable[[jax.Array], Sequence[Batch]]
    adversary: Callable[[jax.Array], Sequence[Batch]] | None = None
    sharp: bool = False
    proof: str | None = None
    numeric_only_reason: str | None = None
    rtol: float = 1e-9
    atol: float = 1e-12
    sharp_threshold: float = 0.99

    def __post_init__(self):
        if self.kind not in ("upper", "lower", "equal"):
            raise ValueError(f"kind must be 'upper', 'lower' or 'equal', got {self.kind!r}")
        if self.proof is None and not self.numeric_only_reason:
            raise ValueError(f"claim {self.id}: give numeric_only_reason when proof is None")
        if self.rtol < 0 or self.atol < 0:
            raise ValueError(f"claim {self.id}: rtol and atol must be >= 0")


_REGISTRY: dict[str, Claim] = {}


def register(claim: Claim) -> Claim:
    """Add ``claim`` to the registry; re-registering the same id replaces it (module reloads)."""
    if not isinstance(claim, Claim):
        raise TypeError(f"claim must be a Claim, got {type(claim).__name__}")
    _REGISTRY[claim.id] = claim
    return claim


def get(claim_id: str) -> Claim:
    """The claim with id ``claim_id``; ``KeyError`` lists the valid ids."""
    try:
        return _REGISTRY[claim_id]
    except KeyError:
        raise KeyError(f"unknown claim {claim_id!r}; valid ids: {sorted(_REGISTRY)}") from None


def all_claims() -> list[Claim]:
    """Every registered claim, ordered by family then id."""
    return sorted(_REGISTRY.values(), key=lambda c: (c.family, c.id))
