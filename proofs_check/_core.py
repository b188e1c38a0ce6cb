"""Result record, check registry and runner for :mod:`proofs_check`.

A *check* is a function that derives one claim of the library with SymPy and returns a
:class:`Proof` (a list of verified or refuted steps). The :func:`check` decorator turns it into a
function that returns a :class:`CheckResult` (claim id, check id, method, status, evidence,
seconds) and registers it under the id ``"<module>.<function name>"``.

Every check takes the formula under test as an optional keyword argument whose default is the
library's closed form, written as a SymPy expression builder in the check's module. Feeding a
wrong formula (mutated constant or sign) must give status ``"failed"``: the checks compare the
formula with an independent derivation, they never evaluate it against itself.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import time
import traceback
from typing import Callable, Iterable

__all__ = [
    "METHODS",
    "CheckResult",
    "CheckSpec",
    "Proof",
    "check",
    "checks",
    "get_check",
    "run_all",
    "status_by_claim",
    "symbolic_upto",
]

#: The method vocabulary; ``"symbolic (every n <= N)"`` carries the actual N.
METHODS = (
    "symbolic (general n)",
    "symbolic (every n <= N)",
    "interval arithmetic",
    "exact rational enumeration",
    "symbolic limit",
)
_METHOD_RE = re.compile(
    r"^(symbolic \(general n\)|symbolic \(every n <= \d+\)|interval arithmetic"
    r"|exact rational enumeration|symbolic limit)$"
)

STATUSES = ("passed", "failed", "error")


def symbolic_upto(n_max: int) -> str:
    """The method string for a derivation done separately for every ``n <= n_max``."""
    return f"symbolic (every n <= {int(n_max)})"


def _check_method(method: str) -> str:
    if not isinstance(method, str) or not _METHOD_RE.match(method):
        raise ValueError(f"method must be one of {METHODS} (with N an integer), got {method!r}")
    return method


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """Outcome of one symbolic check.

    Attributes:
      claim_id: id of the claim in ``softmax_stability.claims`` that this check derives.
      check_id: ``"<module>.<name>"``, e.g. ``"softmax_jacobian.spectral_half"``.
      method: one of :data:`METHODS` (with the actual N for ``every n <= N``).
      status: ``"passed"``, ``"failed"`` (a step was refuted or could not be verified) or
        ``"error"`` (the check raised).
      evidence: the verified steps (simplified residuals, certificates, limits), ``"; "``-joined;
        refuted steps are prefixed ``FAILED:``.
      seconds: wall time of the check.
      statement: one-line statement of what is proven.
    """

    claim_id: str
    check_id: str
    method: str
    status: str
    evidence: str
    seconds: float
    statement: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class Proof:
    """Accumulates the steps of one derivation.

    ``require(cond, text)`` records a step that must hold; the proof fails if any required step
    is false. ``note(text)`` records context (what was computed) without a condition.
    """

    def __init__(self, method: str | None = None):
        self.method = method
        self.steps: list[tuple[bool, str]] = []

    @property
    def ok(self) -> bool:
        return all(flag for flag, _ in self.steps) and bool(self.steps)

    def require(self, cond, text: str) -> bool:
        try:
            flag = bool(cond)
        except TypeError:  # an undecided SymPy relational counts as not verified
            flag = False
        self.steps.append((flag, text if flag else f"FAILED: {text}"))
        return flag

    def note(self, text: str) -> None:
        self.steps.append((True, text))

    def evidence(self) -> str:
        return "; ".join(text for _, text in self.steps)


@dataclasses.dataclass(frozen=True)
class CheckSpec:
    """Registry entry: what a check proves and how to run it."""

    check_id: str
    claim_id: str
    method: str
    statement: str
    func: Callable[..., CheckResult]


_REGISTRY: dict[str, CheckSpec] = {}


def check(claim_id: str, method: str, statement: str = ""):
    """Decorator registering a check function under ``"<module>.<function name>"``.

    The decorated function returns a :class:`Proof`; the wrapper returns a :class:`CheckResult`,
    turning exceptions into status ``"error"``. Keyword arguments (the formula under test, sizes)
    are passed through.
    """
    _check_method(method)

    def deco(fn: Callable[..., Proof]) -> Callable[..., CheckResult]:
        module = fn.__module__.rsplit(".", 1)[-1]
        check_id = f"{module}.{fn.__name__}"

        @functools.wraps(fn)
        def wrapper(*args, **kwargs) -> CheckResult:
            t0 = time.perf_counter()
            used_method = method
            try:
                proof = fn(*args, **kwargs)
                if not isinstance(proof, Proof):
                    raise TypeError(f"check {check_id} returned {type(proof).__name__}, not Proof")
                if proof.method is not None:
                    used_method = _check_method(proof.method)
                status = "passed" if proof.ok else "failed"
                evidence = proof.evidence() or "FAILED: no step recorded"
            except Exception as err:  # a check that crashes is reported, not raised
                status = "error"
                tb = traceback.extract_tb(err.__traceback__)
                where = f" at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else ""
                evidence = f"{type(err).__name__}: {err}{where}"
            return CheckResult(
                claim_id=claim_id,
                check_id=check_id,
                method=used_method,
                status=status,
                evidence=evidence,
                seconds=time.perf_counter() - t0,
                statement=statement,
            )

        wrapper.check_id = check_id  # type: ignore[attr-defined]
        wrapper.claim_id = claim_id  # type: ignore[attr-defined]
        if check_id in _REGISTRY and _REGISTRY[check_id].func.__qualname__ != wrapper.__qualname__:
            raise ValueError(f"duplicate proofs_check id {check_id!r}")
        _REGISTRY[check_id] = CheckSpec(check_id, claim_id, method, statement, wrapper)
        return wrapper

    return deco


def checks() -> list[CheckSpec]:
    """All registered checks, in registration order (family modules must be imported)."""
    return list(_REGISTRY.values())


def get_check(check_id: str) -> CheckSpec:
    """The registry entry for ``check_id``; ``KeyError`` naming the known ids otherwise."""
    try:
        return _REGISTRY[check_id]
    except KeyError:
        raise KeyError(f"unknown proofs_check id {check_id!r}; known: {sorted(_REGISTRY)}") from None


def _select(ids: Iterable[str] | None) -> list[CheckSpec]:
    if ids is None:
        return checks()
    if isinstance(ids, str):
        ids = [ids]
    chosen: list[CheckSpec] = []
    for ident in ids:
        matches = [s for s in _REGISTRY.values() if ident in (s.check_id, s.claim_id)]
        if not matches:
            raise ValueError(
                f"ids: {ident!r} is neither a proofs_check id nor a claim id with a check; "
                f"known check ids: {sorted(_REGISTRY)}"
            )
        chosen.extend(m for m in matches if m not in chosen)
    return chosen


def run_all(ids: Iterable[str] | None = None) -> list[CheckResult]:
    """Run the registered checks (all, or those whose check id or claim id is in ``ids``)
    with their default (library) formulas, in registration order."""
    return [spec.func() for spec in _select(ids)]


def status_by_claim(results: Iterable[CheckResult] | None = None) -> dict[str, str]:
    """``{claim_id: status}`` over ``results`` (default: a fresh :func:`run_all`).

    A claim with several checks is ``"error"`` if any errored, else ``"failed"`` if any failed,
    else ``"passed"``.
    """
    if results is None:
        results = run_all()
    rank = {"passed": 0, "failed": 1, "error": 2}
    out: dict[str, str] = {}
    for res in results:
        prev = out.get(res.claim_id)
        if prev is None or rank.get(res.status, 2) > rank.get(prev, 2):
            out[res.claim_id] = res.status
    return out
