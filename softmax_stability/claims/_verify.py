"""The verifier: evaluate every registered claim on random and adversarial instances.

For each claim and each batch of instances the bound and the measured value are computed with
``jax.jit(jax.vmap(...))`` in float64. The batch's leading axis is sharded over all local devices
(a 1-D :class:`jax.sharding.Mesh` over ``jax.local_devices()``) when it divides evenly, so a machine with
several accelerators (or ``XLA_FLAGS=--xla_force_host_platform_device_count=N``) splits the sweep.

The *ratio* reported per instance is oriented so that ``ratio <= 1`` means the claim holds:
``measure / bound`` for upper bounds, ``bound / measure`` for lower bounds and
``measure / bound`` for identities (then it should be 1).

Power to fail. A sharp claim is judged sharp only if *each* of its tight regimes (instances where
its constant is approached non-trivially, :class:`~softmax_stability.claims._registry.TightRegime`)
reaches ``sharp_threshold``; a global maximum could be reached where any constant would do (at
delta = 0, or in another branch of a max). Adversaries and regimes search the ratio of the claim as
verified, so :func:`verify_mutants` can swap in an altered bound and see the verdict change: a
mutant is killed when the verifier does not pass it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
import warnings
import zlib
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from softmax_stability.claims._registry import Claim, Mutant, RatioFn, all_claims, get, load_families

__all__ = ["ClaimResult", "MutantResult", "verify_claim", "verify_mutant", "verify_claim_and_mutants",
           "verify", "claim_mutants",
           "oriented_ratio", "default_verify_workers", "format_table", "shard_batch", "load_proof_status",
           "CONSTANT_STEP", "IDENTITY_PERTURBATION", "SETTINGS"]

CONSTANT_STEP = 0.02  # the automatic constant mutants of a sharp claim: bound x (1 -+ 2%)
IDENTITY_PERTURBATION = 1e-6  # the automatic mutant of an identity: formula x (1 + 1e-6)

_RATIO_SAMPLE = 400  # ratios kept per claim for the bound_vs_autodiff figure


@dataclasses.dataclass
class ClaimResult:
    """What the verifier found for one claim."""

    id: str
    family: str
    kind: str
    statement: str
    source: str
    instances: int
    max_ratio: float
    median_ratio: float
    max_violation: float  # largest (measure - allowed) in the claim's orientation; <= 0 means holds
    violations: int
    sharp: bool
    sharp_reached: bool | None
    adversary_max_ratio: float | None
    proof: str | None
    proof_status: str  # "passed", "failed", "not run", "numeric only"
    numeric_only_reason: str | None
    verdict: str  # "pass", "VIOLATED", "NOT SHARP", "ERROR"
    seconds: float
    error: str | None = None
    ratios: list[float] = dataclasses.field(default_factory=list)
    worst_instance: dict[str, Any] | None = None
    # per tight regime: name, description, instances, max_ratio, reached (sharp claims only)
    regimes: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    # filled by verify(..., mutants=True): one MutantResult.to_json() per mutant
    mutants: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    # searches (adversary, tight regimes) not run because an earlier stage had already failed
    # (stop_at_failure: a mutant's verification at quick settings)
    searches_skipped: int = 0

    @property
    def mutants_killed(self) -> int:
        return sum(bool(m["killed"]) for m in self.mutants)

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["mutants_killed"], d["mutants_total"] = self.mutants_killed, len(self.mutants)
        return d


@dataclasses.dataclass
class MutantResult:
    """The verifier's verdict on one mutant of a claim; ``killed`` unless it passed."""

    claim: str
    name: str
    change: str
    verdict: str
    killed: bool
    max_ratio: float
    regimes: list[dict[str, Any]]
    reason: str
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _mesh():
    # every device of every process: after jax.distributed.initialize a sweep spans all hosts
    devices = jax.devices()
    if len(devices) < 2:
        return None
    return jax.sharding.Mesh(np.asarray(devices), ("instances",))


def shard_batch(batch: dict[str, Any]) -> dict[str, Any]:
    """Place a batch's leading (instance) axis across all devices when it divides evenly.

    The devices are ``jax.devices()``: this machine's, or every host's after
    ``jax.distributed.initialize`` (each process holds the same batch, drawn from the same key, and
    places its own shards). On one device, or when the instance count does not divide by the
    device count, the batch is returned unchanged (replicated computation gives the same numbers).
    """
    mesh = _mesh()
    if mesh is None:
        return batch
    n_dev = mesh.devices.size
    leaves = jax.tree_util.tree_leaves(batch)
    if not leaves or any(np.ndim(x) == 0 or np.shape(x)[0] % n_dev for x in leaves):
        return batch
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("instances"))

    def place(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

    return jax.tree_util.tree_map(place, batch)


def _to_host(x: jax.Array) -> np.ndarray:
    """A (possibly multi-host) array as one NumPy array on every process."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        from jax.experimental import multihost_utils

        x = multihost_utils.process_allgather(x, tiled=True)
    return np.asarray(x)


def verifier_compiler_options() -> dict[str, Any] | None:
    """XLA options of the verifier's programs: on CPU, LLVM level 1 and XLA's former (non-MLIR)
    fusion emitters.

    Each claim program runs once or twice on small batches, so its compile time (80% of a cold
    ``verify``) outweighs its run time. ``xla_cpu_use_fusion_emitters=False`` compiles the same
    HLO with XLA:CPU's elemental emitters instead of the MLIR fusion emitters, and level 1 runs
    fewer LLVM passes than the default 2: IEEE semantics, no fast-math, and on 2 cores 74 CPU-s for
    seven heavy claims with their mutants against 100 s with the defaults (docs/known_issues.md).

    The verifier used LLVM level 0 before. In jaxlib 0.10.2 that level contracts ``a*x+b`` to an
    FMA in some fusions and not in others, so one value recomputed in two fusions can differ in its
    last bit: ``x == max(x)`` was false for the maximum itself, and the gradient of ``max`` of an
    affine map was ``inf`` or 0 on about 30% of random inputs. The searches ascend such gradients.
    ``tests/test_compiler_consistency.py`` checks these options (and the default ones) for it.
    """
    return ({"xla_backend_optimization_level": 1, "xla_cpu_use_fusion_emitters": False}
            if jax.default_backend() == "cpu" else None)


def oriented_ratio(claim: Claim) -> RatioFn:
    """One instance -> the claim's ratio, oriented so that ``<= 1`` means it holds: measure/bound
    (upper), bound/measure (lower), |measure - bound| / tolerance (identity). Traceable; this is
    what adversaries and tight regimes maximise."""

    def ratio(prm):
        b = jnp.asarray(claim.bound(prm))
        m = jnp.asarray(claim.measure(prm))
        if claim.kind == "upper":
            return m / b
        if claim.kind == "lower":
            return b / m
        return jnp.abs(m - b) / (claim.atol + claim.rtol * jnp.abs(b))

    return ratio


def _fingerprint(batch: dict[str, Any]) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for k in sorted(batch):
        x = np.asarray(_to_host(batch[k]))
        h.update(f"{k}:{x.dtype}:{x.shape};".encode())
        h.update(np.ascontiguousarray(x).tobytes())
    return h.digest()


class _Memo:
    """What a claim's verification shares with its mutants' (:func:`verify_claim_and_mutants`).

    ``measures`` maps a batch's fingerprint to its measured values; ``bounds`` maps (fingerprint,
    bound function) to that bound's values. The claim's programs compute, besides its own bound and
    measure, the bound of every mutant in ``extra_bounds``: one compiled program per batch shape
    instead of one per shape and mutant, and a mutant meeting the same instances (the random ones,
    constructed regimes) computes nothing anew."""

    def __init__(self, extra_bounds: Sequence[Callable] = ()):
        self.measures: dict[bytes, np.ndarray] = {}
        self.bounds: dict[tuple[bytes, int], np.ndarray] = {}
        self.extra_bounds = tuple(extra_bounds)  # held, so that their ids stay theirs
        # the claim's own searched batches, recorded by its verification (record=True) for its
        # mutants at quick settings: {"bound": claim.bound, "adv": [batch], "regimes": [[batch]]}
        self.record = False
        self.claim_stages: dict[str, Any] | None = None


def _evaluate(claim: Claim, batches: Iterable[dict[str, Any]], memo: _Memo | None = None):
    """(batch, bound, measure) per batch. With a ``memo`` (:class:`_Memo`), values already computed
    for a batch with the same fingerprint are reused: a mutant (same measure, other bound) verified
    after its claim re-measures only the instances its own searches found."""
    opts = verifier_compiler_options()
    extra = [f for f in memo.extra_bounds if f is not claim.bound] if memo is not None else []

    def with_extra(prm):
        # bound and measure in one program: half the compilations, which dominate on CPU
        return (jnp.asarray(claim.bound(prm)), jnp.asarray(claim.measure(prm)),
                tuple(jnp.asarray(f(prm)) for f in extra))

    def compile_both():
        return jax.jit(jax.vmap(with_extra), compiler_options=opts)

    both = compile_both()
    bound_only = jax.jit(jax.vmap(lambda prm: jnp.asarray(claim.bound(prm))), compiler_options=opts)

    def flat(x):
        return _to_host(x).astype(np.float64).reshape(-1)

    out = []
    for batch in batches:
        batch = shard_batch({k: jnp.asarray(v) for k, v in batch.items()})
        fp = _fingerprint(batch) if memo is not None else None
        if fp is not None and fp in memo.measures:
            m = memo.measures[fp]
            b = memo.bounds.get((fp, id(claim.bound)))
            if b is None:
                b = memo.bounds[fp, id(claim.bound)] = flat(bound_only(batch))
        else:
            try:
                b, m, bx = both(batch)
            except Exception:
                if not extra:
                    raise
                # a broken mutant bound must not break its claim: it fails in its own verification
                extra = []
                both = compile_both()
                b, m, bx = both(batch)
            b, m = flat(b), flat(m)
            if fp is not None:
                memo.measures[fp] = m
                memo.bounds[fp, id(claim.bound)] = b
                for f, v in zip(extra, bx):
                    memo.bounds[fp, id(f)] = flat(v)
        if b.shape != m.shape:
            raise ValueError(f"bound and measure shapes differ: {b.shape} vs {m.shape}")
        out.append((batch, b, m))
    return out


def _ratios_and_violations(claim: Claim, b: np.ndarray, m: np.ndarray):
    tol = claim.atol + claim.rtol * np.abs(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        if claim.kind == "upper":
            excess = m - b - tol
            ratio = np.where(b != 0, m / b, np.where(m <= tol, 0.0, np.inf))
        elif claim.kind == "lower":
            excess = b - m - tol
            ratio = np.where(m != 0, b / m, np.where(b <= tol, 0.0, np.inf))
        else:
            excess = np.abs(m - b) - tol
            ratio = np.where(b != 0, m / b, np.where(np.abs(m) <= tol, 1.0, np.inf))
    # NaN on either side is a failure, never silently a pass
    excess = np.where(np.isnan(m) | np.isnan(b), np.inf, excess)
    return ratio, excess


def _fails(claim: Claim, evals) -> bool:
    """Whether any instance of ``evals`` (from :func:`_evaluate`) is beyond the claim's tolerance."""
    return any(bool(np.any(_ratios_and_violations(claim, b, m)[1] > 0)) for _, b, m in evals)


def _reached(claim: Claim, evals) -> bool:
    """Whether a tight regime's instances reach the claim's sharpness threshold."""
    rs = [_ratios_and_violations(claim, b, m)[0] for _, b, m in evals]
    return bool(rs) and bool(np.nanmax(np.concatenate(rs)) >= claim.sharp_threshold)


def _instance(batch: dict[str, Any], i: int) -> dict[str, Any]:
    inst = {}
    for k, v in batch.items():
        x = _to_host(v)[i]
        inst[k] = x.tolist() if x.size <= 64 else f"<array shape {x.shape}>"
    return inst


def _claim_key(seed: int, claim_id: str) -> jax.Array:
    return jax.random.fold_in(jax.random.PRNGKey(seed), zlib.crc32(claim_id.encode()) & 0x7FFFFFFF)


def load_proof_status(path: str | os.PathLike | None) -> dict[str, str]:
    """Read ``proofs_check`` records written by ``python -m proofs_check --json PATH`` as
    ``{check_id: status}`` (a claim's ``proof`` field is a check id); missing file -> ``{}``."""
    if path is None or not Path(path).exists():
        return {}
    data = json.loads(Path(path).read_text())
    records = data["records"] if isinstance(data, dict) and "records" in data else data
    status: dict[str, str] = {}
    for rec in records:
        cid = rec.get("check_id")
        if cid is None:
            continue
        # the same check listed twice passes only if both runs passed
        prev = status.get(cid, "passed")
        status[cid] = rec.get("status", "unknown") if prev == "passed" else prev
    return status


def _proof_status_of(claim: Claim, proof_status: dict[str, str] | None) -> str:
    return "numeric only" if claim.proof is None else (proof_status or {}).get(claim.proof, "not run")


def _error_result(claim: Claim, pstatus: str, seconds: float, error: str) -> ClaimResult:
    return ClaimResult(
        id=claim.id, family=claim.family, kind=claim.kind, statement=claim.statement,
        source=claim.source, instances=0, max_ratio=math.nan, median_ratio=math.nan,
        max_violation=math.nan, violations=0, sharp=claim.sharp, sharp_reached=None,
        adversary_max_ratio=None, proof=claim.proof, proof_status=pstatus,
        numeric_only_reason=claim.numeric_only_reason, verdict="ERROR", seconds=seconds, error=error,
    )


def verify_claim(claim: Claim, *, seed: int = 0, adversary: bool = True,
                 proof_status: dict[str, str] | None = None, stop_at_failure: bool = False,
                 _memo: _Memo | None = None) -> ClaimResult:
    """Evaluate one claim, in float64 whatever the caller's ``jax_enable_x64`` (the setting is
    restored afterwards). Never raises for a claim's own failure: the result says ERROR.

    Violations are counted over the random instances, the adversary's and the tight regimes'. A
    sharp claim is sharp when every tight regime reaches ``claim.sharp_threshold`` (a sharp claim
    without regimes falls back to the global maximum). With ``adversary=False`` neither the
    adversary nor the regimes run, and sharpness is not judged (``sharp_reached=None``).

    With ``stop_at_failure=True`` the searches run only until the verdict is certain not to be
    "pass": the random instances, then each tight regime, then the adversary, stopping at the first
    instance beyond tolerance or regime short of the threshold (the rest are counted in
    ``searches_skipped``). Whether the result passes is the same as without (each stage draws from
    its own key); the counts, the maximum ratio and the worst instance cover what ran. This is how a
    mutant is judged at ``settings="quick"`` (:func:`verify`).
    """
    with jax.enable_x64(True):
        return _verify_claim_x64(claim, seed=seed, adversary=adversary, proof_status=proof_status,
                                 stop_at_failure=stop_at_failure, memo=_memo)


def _verify_claim_x64(claim: Claim, *, seed: int, adversary: bool,
                      proof_status: dict[str, str] | None, stop_at_failure: bool = False,
                      memo: _Memo | None = None) -> ClaimResult:
    t0 = time.perf_counter()
    key = _claim_key(seed, claim.id)
    k_sample, k_adv, k_reg = jax.random.split(key, 3)
    pstatus = _proof_status_of(claim, proof_status)
    try:
        ratio_fn = oriented_ratio(claim)
        rand, adv, reg, prior = _evaluate(claim, claim.sample(k_sample), memo), [], [], []
        # a mutant at quick settings (stop_at_failure) meets its claim's searched instances first
        # (computed already: its bound is one of the memo's extra bounds), and a constant multiple
        # of the claim's bound takes the claim's regime instances as its own (see verify_mutant)
        stages_of_claim = memo.claim_stages if (memo is not None and stop_at_failure) else None
        multiple = (stages_of_claim is not None and claim.kind in ("upper", "lower")
                    and getattr(claim.bound, "base", None) is stages_of_claim["bound"])
        # the searches, in the order of a failure's likely finder when stop_at_failure: the tight
        # regimes (a looser bound shows there), then the adversary
        run_adv = adversary and claim.adversary is not None
        run_reg = adversary and claim.sharp
        stages = [("regime", i) for i in range(len(claim.tight_regimes)) if run_reg] + [("adv", 0)] * run_adv
        if not stop_at_failure:
            stages.sort(key=lambda st: st[0] != "adv")  # the adversary first, as reported
        skipped = 0
        failed = stop_at_failure and _fails(claim, rand)
        if stages_of_claim is not None and not failed:
            seen = stages_of_claim["adv"] + [b for ev in stages_of_claim["regimes"] for b in ev]
            prior = _evaluate(claim, seen, memo)
            failed = _fails(claim, prior)
        for n_done, (what, i) in enumerate(stages):
            if failed:
                skipped = len(stages) - n_done
                break
            if what == "adv":
                adv = _evaluate(claim, claim.adversary(k_adv, ratio_fn), memo)
                failed = stop_at_failure and _fails(claim, adv)
            else:
                regime = claim.tight_regimes[i]
                found = (stages_of_claim["regimes"][i] if multiple else
                         regime.instances(jax.random.fold_in(k_reg, i), ratio_fn))
                ev = _evaluate(claim, found, memo)
                reg.append((regime, ev))
                failed = stop_at_failure and (_fails(claim, ev) or not _reached(claim, ev))
        if memo is not None and memo.record:
            memo.claim_stages = {"bound": claim.bound, "adv": [b for b, _, _ in adv],
                                 "regimes": [[b for b, _, _ in ev] for _, ev in reg]}
        ratios, excesses, worst = [], [], (-np.inf, None)
        for batch, b, m in rand + prior + adv + [t for _, ev in reg for t in ev]:
            r, e = _ratios_and_violations(claim, b, m)
            ratios.append(r)
            excesses.append(e)
            i = int(np.nanargmax(np.where(np.isnan(e), np.inf, e)))
            if e[i] > worst[0]:
                worst = (float(e[i]), _instance(batch, i) | {"bound": float(b[i]), "measure": float(m[i])})
        r_all = np.concatenate(ratios)
        e_all = np.concatenate(excesses)

        def max_of(evals):
            rs = [_ratios_and_violations(claim, b, m)[0] for _, b, m in evals]
            return float(np.nanmax(np.concatenate(rs))) if rs else math.nan

        adv_max = max_of(adv) if adv else None
        finite = r_all[np.isfinite(r_all)]
        max_ratio = float(np.max(r_all)) if r_all.size else math.nan
        n_viol = int(np.sum(e_all > 0))
        regimes = [{"name": rg.name, "description": rg.description,
                    "instances": int(sum(b.size for _, b, _ in ev)), "max_ratio": max_of(ev),
                    "reached": bool(max_of(ev) >= claim.sharp_threshold)} for rg, ev in reg]
        sharp_reached = None
        if claim.sharp and adversary and not (skipped and n_viol):
            sharp_reached = (all(r["reached"] for r in regimes) if regimes
                             else bool(max_ratio >= claim.sharp_threshold))
        if n_viol:
            verdict = "VIOLATED"
        elif claim.sharp and sharp_reached is False:
            verdict = "NOT SHARP"
        else:
            verdict = "pass"
        rng = np.random.default_rng(0)
        keep = finite if finite.size <= _RATIO_SAMPLE else rng.choice(finite, _RATIO_SAMPLE, replace=False)
        return ClaimResult(
            id=claim.id, family=claim.family, kind=claim.kind, statement=claim.statement,
            source=claim.source, instances=int(r_all.size), max_ratio=max_ratio,
            median_ratio=float(np.median(finite)) if finite.size else math.nan,
            max_violation=float(np.max(e_all)), violations=n_viol, sharp=claim.sharp,
            sharp_reached=sharp_reached, adversary_max_ratio=adv_max, proof=claim.proof,
            proof_status=pstatus, numeric_only_reason=claim.numeric_only_reason, verdict=verdict,
            seconds=time.perf_counter() - t0, ratios=[float(x) for x in keep],
            worst_instance=worst[1] if n_viol else None, regimes=regimes, searches_skipped=skipped,
        )
    except Exception as err:  # a broken claim is reported, and makes verify fail
        return _error_result(claim, pstatus, time.perf_counter() - t0, f"{type(err).__name__}: {err}")


def _scaled(bound: Callable, factor: float) -> Callable:
    def scaled(prm):
        return factor * jnp.asarray(bound(prm))

    # marked as a constant multiple of ``bound``: the maximisers of its ratio are the claim's
    scaled.base, scaled.factor = bound, factor
    return scaled


def claim_mutants(claim: Claim) -> list[Mutant]:
    """The claim's own mutants, then the automatic ones.

    Automatic: a sharp upper (lower) bound gets its constant moved by ``CONSTANT_STEP`` both ways,
    ``bound x 0.98`` ("tighter", must be VIOLATED) and ``bound x 1.02`` ("looser", must be NOT
    SHARP), mirrored for a lower bound; an identity gets ``formula x (1 + 1e-6)`` ("perturbed",
    must fall outside its tolerance, so a tolerance looser than 1e-6 relative is caught). A
    non-sharp inequality gets none automatically: a slightly tighter version of a loose bound is
    still true, so its mutants are structural and stated with the claim.
    """
    out = list(claim.mutants)
    lo, hi = 1 - CONSTANT_STEP, 1 + CONSTANT_STEP
    if claim.kind == "equal":
        out.append(Mutant(f"formula x (1 + {IDENTITY_PERTURBATION:g})", "perturbed",
                          _scaled(claim.bound, 1 + IDENTITY_PERTURBATION)))
    elif claim.sharp:
        tight, loose = (lo, hi) if claim.kind == "upper" else (hi, lo)
        out.append(Mutant(f"bound x {tight:g}", "tighter", _scaled(claim.bound, tight)))
        out.append(Mutant(f"bound x {loose:g}", "looser", _scaled(claim.bound, loose)))
    return out


def _mutant_by_name(claim: Claim, name: str) -> Mutant:
    for m in claim_mutants(claim):
        if m.name == name:
            return m
    raise KeyError(f"claim {claim.id} has no mutant {name!r}")


def verify_mutant(claim: Claim, mutant: Mutant | str, *, seed: int = 0, settings: str = "full",
                  _memo: _Memo | None = None) -> MutantResult:
    """Verify ``claim`` with its bound replaced by ``mutant.bound`` (same instances, same seed; the
    adversary and the regimes search the mutated ratio). Killed when the verdict is VIOLATED or
    NOT SHARP; a surviving mutant's ``reason`` says what the verifier saw.

    ``settings="quick"`` stops at the first stage that kills the mutant (``verify_claim(...,
    stop_at_failure=True)``), at a fraction of the cost, since most mutants fall to the random
    instances or to their first regime. Called from :func:`verify_claim_and_mutants` (the claim's
    memo at hand), a quick mutant also meets, right after the random instances, the instances its
    claim's own adversary and regimes found (already computed: no new program), and a constant
    multiple ``c * bound`` (``c > 0``: the automatic x0.98 / x1.02 mutants) takes its claim's regime
    instances as its own regime searches: its ratio is the claim's times a constant, so the claim's
    maximisers are its maximisers (Adam's steps do not depend on the gradient's scale, up to its
    epsilon; a random search's ranking not at all). Quick settings may thus kill a mutant with
    instances that ``"full"`` (the mutant's own searches only) does not see, never the reverse;
    ``make run`` verifies at ``"full"``."""
    _check_settings(settings)
    if isinstance(mutant, str):
        mutant = _mutant_by_name(claim, mutant)
    mutated = dataclasses.replace(claim, bound=mutant.bound, mutants=())
    r = verify_claim(mutated, seed=seed, adversary=True, stop_at_failure=settings == "quick", _memo=_memo)
    killed = r.verdict in ("VIOLATED", "NOT SHARP")
    if killed:
        how = (f"{r.violations} instance(s) beyond tolerance, max ratio {r.max_ratio:.6g}"
               if r.verdict == "VIOLATED" else
               ("not reached in " + ", ".join(f"{g['name']} (max {g['max_ratio']:.6g})"
                                              for g in r.regimes if not g["reached"])
                if r.regimes else f"max ratio {r.max_ratio:.6g} below the sharpness threshold"))
        reason = f"{r.verdict}: {how}" + (f" (quick settings: {r.searches_skipped} later search(es) not run)"
                                          if r.searches_skipped else "")
    elif r.verdict == "ERROR":
        reason = f"ERROR: {r.error}"
    else:
        reached = "; ".join(f"{g['name']}: max {g['max_ratio']:.6g}" for g in r.regimes)
        reason = (f"survives: passes with max ratio {r.max_ratio:.6g}, no violation"
                  + (f"; regimes {reached}" if reached else ""))
    return MutantResult(claim=claim.id, name=mutant.name, change=mutant.change, verdict=r.verdict,
                        killed=killed, max_ratio=r.max_ratio, regimes=r.regimes, reason=reason,
                        seconds=r.seconds)


_INHERITED_CONFIG = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")


_started_queue = None  # in a worker process: where it reports each claim it begins (see _run_in_workers)


def _init_worker(config: dict[str, Any], started_queue=None) -> None:
    """A worker process takes the parent's JAX settings (x64, the persistent compilation cache)."""
    global _started_queue
    _started_queue = started_queue
    jax.config.update("jax_enable_x64", True)
    for name, value in config.items():
        jax.config.update(name, value)
    load_families()  # registering the families is start-up, not claim time


def _report_start(claim_id: str, since: float | None = None) -> None:
    """Tell the parent that this worker began ``claim_id`` at ``since`` (``time.monotonic()``, a
    system-wide clock; default now): the watchdog times each claim from there."""
    if _started_queue is not None:
        _started_queue.put((claim_id, time.monotonic() if since is None else since))


def _start_and_run(fn: Callable[..., ClaimResult], claim_id: str, *args) -> ClaimResult:
    """A worker's task: report the start of ``claim_id``, then run ``fn(claim_id, *args)``."""
    _report_start(claim_id)
    return fn(claim_id, *args)


def verify_claim_and_mutants(claim: Claim, *, seed: int = 0,
                             proof_status: dict[str, str] | None = None,
                             settings: str = "full") -> ClaimResult:
    """:func:`verify_claim`, then every mutant of the claim (:func:`claim_mutants`) on the same
    seed, their results in the claim's ``mutants``. The mutants share the claim's measured values
    wherever they meet the same instances (the random ones, constructed regimes), and the claim's
    programs compute every mutant's bound there too: only the instances a mutant's own searches
    find are computed anew. ``settings``: see :func:`verify_mutant` (the claim itself always runs
    in full)."""
    _check_settings(settings)
    muts = claim_mutants(claim)
    memo = _Memo([m.bound for m in muts])
    memo.record = True
    r = verify_claim(claim, seed=seed, adversary=True, proof_status=proof_status, _memo=memo)
    memo.record = False
    r.mutants = [verify_mutant(claim, m, seed=seed, settings=settings, _memo=memo).to_json() for m in muts]
    return r


SETTINGS = ("full", "quick")


def _check_settings(settings) -> None:
    if settings not in SETTINGS:
        raise ValueError(f"settings must be one of {SETTINGS}, got {settings!r}")


def _run_task(claim_id: str, seed: int, adversary: bool, proof_status: dict[str, str] | None,
              mutants: bool = False, settings: str = "full") -> ClaimResult:
    if mutants:
        return verify_claim_and_mutants(get(claim_id), seed=seed, proof_status=proof_status,
                                        settings=settings)
    return verify_claim(get(claim_id), seed=seed, adversary=adversary, proof_status=proof_status)


def _verify_one_in_worker(claim_id: str, seed: int, adversary: bool,
                          proof_status: dict[str, str] | None, mutants: bool = False,
                          settings: str = "full") -> ClaimResult:
    """One claim (and, with ``mutants``, all its mutants) in a worker process (module level so that
    ``spawn`` can pickle it)."""
    load_families()

    return _run_task(claim_id, seed, adversary, proof_status, mutants, settings)


def default_verify_workers(n_claims: int) -> int:
    """Worker processes :func:`verify` uses by default: the CPU cores (at most 8) on the CPU backend.

    One process on an accelerator (each process would reserve its own device memory), in a
    multi-host run (workers would not belong to it), and for fewer than 4 claims (starting a
    worker, about 3 s for the imports, would not pay off).
    """
    if jax.default_backend() != "cpu" or jax.process_count() > 1 or n_claims < 4:
        return 1
    return max(1, min(os.cpu_count() or 1, 8, n_claims))


def verify(ids: Sequence[str] | None = None, *, seed: int = 0, adversary: bool = True,
           proof_status: dict[str, str] | None = None, progress: bool = True,
           workers: int | None = None, stall_timeout: float = 900.0,
           mutants: bool = False, settings: str = "full") -> list[ClaimResult]:
    """Verify the claims with the given ids (all registered claims by default), in float64.

    With ``mutants=True`` every mutant of every claim (:func:`claim_mutants`) is verified too, in the
    claim's own task (:func:`verify_claim_and_mutants`, so measured values are shared), and its
    :class:`MutantResult` lands in the claim's ``mutants`` list (``mutants_killed`` of
    ``len(mutants)``). ``stall_timeout`` then bounds a claim together with its mutants.
    ``settings="quick"`` (the test suite's) judges each mutant only until it is killed, reusing
    its claim's search results where that is exact (:func:`verify_mutant`); ``"full"`` (``make
    run``'s) runs every mutant's own searches in full and its reports count every instance.

    Claims run in ``workers`` separate processes (default :func:`default_verify_workers`; ``1``
    runs them in order in this process). Each claim draws from its own key, so the results do not
    depend on the number of workers or the order in which claims finish. Processes, not threads:
    a cold run is compile- and trace-bound, and tracing holds the GIL (threads gained 5% on 2
    cores, processes 20%: 75 s -> 60 s for 50 claims). Processes also keep claims from sharing
    XLA's CPU runtime: with threads, one ``make run`` hung with two threads inside batched
    ``eigvalsh`` programs.

    Watchdog: on 2 cores jaxlib 0.10.2 can deadlock a program with several batched LAPACK calls
    (claim S3, three ``eigvalsh``): each of the two intra-op threads blocks in
    ``jax::ParallelBatchMap`` waiting for chunks queued behind it on the same pool (2 of 46 runs of
    S3, 2 processes at a time, on a busy machine; docs/known_issues.md). With workers, if a
    claim runs for more than ``stall_timeout`` seconds, timed from when a worker begins it (a
    worker's start-up and a claim's wait for a free worker do not count), the worker processes are
    killed and the unfinished claims rerun once in fresh ones; a claim still unfinished on the rerun
    is reported as ERROR. One worker (``workers=1``) runs in this process and has no watchdog.
    """
    jax.config.update("jax_enable_x64", True)
    load_families()

    _check_settings(settings)
    claims = [get(i) for i in ids] if ids else all_claims()
    if mutants and not adversary:
        raise ValueError("mutants=True needs adversary=True: mutants are judged on the searches and regimes")
    if workers is None:
        workers = default_verify_workers(len(claims))
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    bar = None
    if progress:
        from tqdm.auto import tqdm

        # disable=None: no bar when stderr is not a terminal (a log file gets no carriage returns)
        bar = tqdm(total=len(claims), desc="verify" + (" --mutants" if mutants else ""), unit="claim",
                   leave=False, disable=None)

    def done(r: ClaimResult) -> ClaimResult:
        if bar is not None:
            bar.set_postfix_str(r.id)
            bar.update(1)
        return r

    try:
        if workers == 1 or len(claims) <= 1:
            return [done(_run_task(c.id, seed, adversary, proof_status, mutants, settings)) for c in claims]
        if not (isinstance(stall_timeout, (int, float)) and stall_timeout > 0):
            raise ValueError(f"stall_timeout must be a number of seconds > 0, got {stall_timeout!r}")
        by_id: dict[str, ClaimResult] = {}
        pending = list(claims)
        for attempt in (1, 2):
            pending, why = _run_in_workers(pending, min(workers, len(pending)),
                                           (seed, adversary, proof_status, mutants, settings), stall_timeout,
                                           lambda r: by_id.__setitem__(r.id, done(r)))
            if not pending:
                break
            warnings.warn(f"verify: {why}; killed the workers (attempt {attempt}) with "
                          f"{', '.join(c.id for c in pending)} unfinished"
                          + ("; rerunning them" if attempt == 1 else ""), RuntimeWarning, stacklevel=2)
        for c in pending:
            by_id[c.id] = done(_error_result(c, _proof_status_of(c, proof_status), 2 * stall_timeout,
                                             f"stalled: no result within {stall_timeout:g} s, twice"))
        return [by_id[c.id] for c in claims]
    finally:
        if bar is not None:
            bar.close()


# Workers that have begun no claim this long after their pool started are treated as stalled (a
# worker that cannot start, e.g. one whose initializer raises, is otherwise replaced forever by the
# pool). Generous: start-up is imports and is slow on a busy machine; it never counts as claim time.
_STARTUP_TIMEOUT = 600.0


def _run_in_workers(claims: list[Claim], workers: int, args: tuple, stall_timeout: float,
                    on_result: Callable[[ClaimResult], Any]) -> tuple[list[Claim], str]:
    """Run ``claims`` in ``workers`` spawned processes, handing each result to ``on_result``.

    Each claim is timed from when a worker reports that it began it (:func:`_report_start`), so
    neither spawning and importing in the workers nor waiting for a free worker counts against
    ``stall_timeout``. When a claim has run for more than ``stall_timeout`` seconds (or no claim has
    begun within ``max(stall_timeout, _STARTUP_TIMEOUT)`` s of the pool's start) the workers are
    terminated; returns ``(unfinished claims, why they were stopped)``, ``([], "")`` when all
    finished."""
    import multiprocessing
    import queue

    # spawn: forking a process whose XLA runtime has started threads is unsafe
    ctx = multiprocessing.get_context("spawn")
    config = {name: getattr(jax.config, name) for name in _INHERITED_CONFIG
              if getattr(jax.config, name, None) is not None}
    started_queue = ctx.Queue()
    pool = ctx.Pool(processes=workers, initializer=_init_worker, initargs=(config, started_queue))
    t_pool = time.monotonic()
    stalled = False
    try:
        running = {c.id: (c, pool.apply_async(_start_and_run, (_verify_one_in_worker, c.id, *args)))
                   for c in claims}
        since: dict[str, float] = {}  # claim id -> when a worker began it (its latest report)
        while running:
            for cid in [cid for cid, (_, a) in running.items() if a.ready()]:
                on_result(running.pop(cid)[1].get())  # re-raises a worker's exception
            while True:
                try:
                    cid, t = started_queue.get_nowait()
                except queue.Empty:
                    break
                since[cid] = t
            now = time.monotonic()
            overran = [cid for cid in running if cid in since and now - since[cid] > stall_timeout]
            if overran:
                why = f"{', '.join(overran)} ran for more than {stall_timeout:g} s"
            elif not since and now - t_pool > max(stall_timeout, _STARTUP_TIMEOUT):
                why = f"no worker began a claim within {max(stall_timeout, _STARTUP_TIMEOUT):g} s of starting"
            else:
                if running:
                    time.sleep(0.05)
                continue
            stalled = True
            return [c for c, _ in running.values()], why
        return [], ""
    finally:
        if stalled:
            pool.terminate()
        else:
            pool.close()
        pool.join()
        started_queue.close()


def format_table(results: Sequence[ClaimResult]) -> str:
    """One row per claim: instances, max ratio, sharpness reached, symbolic status, verdict."""
    with_mutants = any(r.mutants for r in results)
    head = (f"{'claim':<40} {'kind':<6} {'inst':>6} {'max ratio':>12} {'sharp':>6} {'proof':>13} "
            + (f"{'mutants':>8} " if with_mutants else "") + f"{'time':>6}  verdict")
    lines = [head, "-" * len(head)]
    survivors = []
    for r in results:
        sharp = "-" if not r.sharp else {True: "yes", False: "NO", None: "?"}[r.sharp_reached]
        score = f"{r.mutants_killed}/{len(r.mutants)}"
        lines.append(
            f"{r.id:<40} {r.kind:<6} {r.instances:>6} {r.max_ratio:>12.6g} {sharp:>6} "
            f"{r.proof_status:>13} " + (f"{score:>8} " if with_mutants else "")
            + f"{r.seconds:>5.1f}s  {r.verdict}" + (f"  ({r.error})" if r.error else "")
        )
        survivors += [f"  {r.id} [{m['name']}]: {m['reason']}" for m in r.mutants if not m["killed"]]
    n_bad = sum(r.verdict != "pass" for r in results)
    lines.append("-" * len(head))
    summary = f"{len(results)} claims, {len(results) - n_bad} pass, {n_bad} fail"
    if with_mutants:
        total = sum(len(r.mutants) for r in results)
        summary += f"; mutants killed {sum(r.mutants_killed for r in results)}/{total}"
    lines.append(summary)
    if survivors:
        lines.append("surviving mutants (a check that cannot fail):")
        lines += survivors
    return "\n".join(lines)
