"""Symbolic (SymPy) verification of every closed form and inequality the library relies on.

One module per family -- :mod:`~proofs_check.softmax_jacobian`, :mod:`~proofs_check.sparse_maps`,
:mod:`~proofs_check.focus_conditions`, :mod:`~proofs_check.dilution`,
:mod:`~proofs_check.ssa_algebra`, :mod:`~proofs_check.recent_theory` -- registers checks under ``"<module>.<name>"``. Each check
derives one claim of ``softmax_stability.claims`` and returns a :class:`CheckResult` (claim id,
check id, method, status, evidence, seconds). Each takes the formula under test as an optional
argument (default: the library's closed form as a SymPy builder), so a wrong formula is rejected
with status ``"failed"``.

Run ``python -m proofs_check`` for the table (non-zero exit on any failure) and
``python -m proofs_check --json PATH`` to write the records.

Example:
    >>> import proofs_check
    >>> res = proofs_check.run_all(["focus_conditions.pmax_bound"])
    >>> (res[0].claim_id, res[0].status)
    ('D2-dispersion-pmax', 'passed')
"""

from __future__ import annotations

from ._core import (
    METHODS,
    CheckResult,
    CheckSpec,
    Proof,
    checks,
    get_check,
    run_all,
    status_by_claim,
)
from . import softmax_jacobian, sparse_maps, focus_conditions, dilution, ssa_algebra, recent_theory  # noqa: E402  (register)

__all__ = [
    "METHODS",
    "CheckResult",
    "CheckSpec",
    "Proof",
    "checks",
    "get_check",
    "run_all",
    "status_by_claim",
    "status_by_check",
    "softmax_jacobian",
    "sparse_maps",
    "focus_conditions",
    "dilution",
    "ssa_algebra",
    "recent_theory",
]


def status_by_check(results=None) -> dict[str, str]:
    """``{check_id: status}`` over ``results`` (default: a fresh :func:`run_all`).

    Useful for claims that cite a check deriving a sibling claim (e.g. ``J5b`` cites
    ``softmax_jacobian.one_norm``, registered under ``J5``).
    """
    if results is None:
        results = run_all()
    return {r.check_id: r.status for r in results}
