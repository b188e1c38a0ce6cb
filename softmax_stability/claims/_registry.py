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

__all__ = ["Claim", "TightRegime", "Mutant", "register", "get", "all_claims", "Batch", "RatioFn"]

Batch = Mapping[str, Any]  # dict of arrays with a leading instance axis
Kind = Literal["upper", "lower", "equal"]
# one instance -> the claim's oriented ratio (<= 1 where it holds; see _verify.oriented_ratio). An
# adversary or a tight regime receives the ratio of the claim *as verified*, so a mutated bound
# redirects the search instead of being judged on the original bound's worst cases.
RatioFn = Callable[[Mapping[str, Any]], Any]


@dataclasses.dataclass(frozen=True)
class TightRegime:
    """Instances on which a sharp claim's constant is approached non-trivially.

    Attributes:
      name: short label (``"Delta < 4"``).
      description: where the regime lies and why the constant matters there (not, e.g., where
        both sides tend to 0 or 1 and any constant would do).
      instances: ``(key, ratio) -> list of batches``: a search of the regime that maximises
        ``ratio`` (the claim's own ratio, mutated bound included), or constructed maximisers that
        stay in the regime whatever the bound.
    """

    name: str
    description: str
    instances: Callable[[jax.Array, RatioFn], Sequence[Batch]]


MutantChange = Literal["tighter", "looser", "perturbed"]


@dataclasses.dataclass(frozen=True)
class Mutant:
    """An altered bound the verifier must reject: the claim's power to fail, made explicit.

    A mutant is *killed* when the verifier, run on the claim with ``bound`` replaced, does not
    pass it: a ``"tighter"`` upper bound (or larger lower bound) is VIOLATED, a ``"looser"`` bound
    of a sharp claim is NOT SHARP, a ``"perturbed"`` identity falls outside its tolerance.

    Attributes:
      name: short label (``"4/Delta -> 4.08/Delta"``).
      change: ``"tighter"``, ``"looser"`` or ``"perturbed"`` (what is expected to kill it).
      bound: one instance -> the altered bound (same signature as :attr:`Claim.bound`).
    """

    name: str
    change: MutantChange
    bound: Callable[[Batch], Any]

    def __post_init__(self):
        if self.change not in ("tighter", "looser", "perturbed"):
            raise ValueError(f"mutant {self.name!r}: change must be 'tighter', 'looser' or 'perturbed', "
                             f"got {self.change!r}")


@dataclasses.dataclass(frozen=True)
class Claim:
    """One checkable statement.

    Attributes:
      id: stable identifier, e.g. ``"J2-softmax-spectral-half"``.
      family: the concern it belongs to (``"softmax_jacobian"``, ``"focus"``, ...).
      statement: the statement in LaTeX.
      source: paper + equation, or ``"derived here"`` with a pointer.
      kind: ``"upper"`` (measure <= bound), ``"lower"`` (measure >= bound) or ``"equal"``
        (``|measure - bound| <= atol + rtol |bound|``).
      bound: one instance (dict of arrays) -> scalar bound. Traced under ``jit``/``vmap``.
      measure: one instance -> scalar measured value, computed independently of ``bound``.
      sample: ``key -> list of batches``; a batch is a dict of arrays with a leading instance
        axis (one batch per shape, e.g. per ``n``).
      adversary: ``(key, ratio) -> list of batches`` of instances found by maximising ``ratio``,
        the claim's own oriented ratio (``measure / bound`` for upper bounds), or ``None``.
      sharp: whether the bound is attained or approached; then every tight regime must reach
        ratio >= ``sharp_threshold``.
      tight_regimes: for a sharp claim, the regimes (at least one) where its constant is
        approached non-trivially; sharpness is judged in each of them, not by a global maximum.
      mutants: altered bounds the verifier must reject (:class:`Mutant`); the verifier adds two
        constant mutants (x0.98 and x1.02, or a 1e-6 relative perturbation for identities), see
        :func:`softmax_stability.claims._verify.claim_mutants`.
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
    tight_regimes: Sequence[TightRegime] = ()
    mutants: Sequence[Mutant] = ()
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
        if self.kind == "equal" and self.sharp:
            raise ValueError(f"claim {self.id}: an identity ('equal') is not sharp or loose; set sharp=False")
        if self.tight_regimes and not self.sharp:
            raise ValueError(f"claim {self.id}: tight_regimes are for sharp claims")
        for r in self.tight_regimes:
            if not isinstance(r, TightRegime):
                raise TypeError(f"claim {self.id}: tight_regimes holds TightRegime, got {type(r).__name__}")
        names = [m.name for m in self.mutants]
        if len(set(names)) != len(names):
            raise ValueError(f"claim {self.id}: mutant names must be unique, got {names}")


_REGISTRY: dict[str, Claim] = {}


def load_families() -> None:
    """Import every family module of ``softmax_stability.claims`` (each registers its claims on import)."""
    import importlib
    import pkgutil
    from pathlib import Path

    here = Path(__spec__.origin).parent  # the claims package, wherever it is installed
    for info in pkgutil.iter_modules([str(here)]):
        if not info.name.startswith("_"):
            importlib.import_module(f"softmax_stability.claims.{info.name}")


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
