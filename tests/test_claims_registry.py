"""The verifier detects violations, errors and missing sharpness; registry hygiene."""

import jax.numpy as jnp
import numpy as np
import pytest

from softmax_stability.claims import all_claims
from softmax_stability.claims._registry import Claim
from softmax_stability.claims._verify import load_proof_status, verify_claim


def _batch(key):
    return [{"x": jnp.linspace(0.0, 1.0, 11)}]


def _claim(**kw):
    base = dict(id="T-test", family="test", statement="x^2 <= x", source="test", kind="upper",
                bound=lambda p: p["x"], measure=lambda p: p["x"] ** 2, sample=_batch,
                numeric_only_reason="test claim")
    base.update(kw)
    return Claim(**base)


def test_true_claim_passes():
    r = verify_claim(_claim())
    assert r.verdict == "pass" and r.violations == 0 and r.instances == 11
    np.testing.assert_allclose(r.max_ratio, 1.0)  # attained at x = 1


def test_false_claim_is_reported_as_violated():
    r = verify_claim(_claim(measure=lambda p: p["x"] ** 0.5))  # sqrt(x) > x on (0, 1)
    assert r.verdict == "VIOLATED" and r.violations == 9
    assert r.worst_instance is not None and r.max_ratio > 1


def test_lower_and_equal_kinds():
    assert verify_claim(_claim(kind="lower", bound=lambda p: p["x"] ** 2, measure=lambda p: p["x"])).verdict == "pass"
    assert verify_claim(_claim(kind="lower", bound=lambda p: p["x"], measure=lambda p: p["x"] ** 2)).verdict == "VIOLATED"
    assert verify_claim(_claim(kind="equal", bound=lambda p: p["x"], measure=lambda p: p["x"] * (1 + 1e-13))).verdict == "pass"
    assert verify_claim(_claim(kind="equal", bound=lambda p: p["x"], measure=lambda p: p["x"] + 1e-6)).verdict == "VIOLATED"


def test_nan_measure_is_a_violation_not_a_pass():
    r = verify_claim(_claim(measure=lambda p: p["x"] * jnp.nan))
    assert r.verdict == "VIOLATED"


def test_sharp_claim_not_reached():
    r = verify_claim(_claim(measure=lambda p: 0.5 * p["x"] ** 2, sharp=True))
    assert r.verdict == "NOT SHARP" and r.sharp_reached is False


def test_broken_claim_reports_error():
    def bad(p):
        raise RuntimeError("boom")

    r = verify_claim(_claim(measure=bad))
    assert r.verdict == "ERROR" and "boom" in r.error


def test_claim_needs_a_reason_without_proof():
    with pytest.raises(ValueError, match="numeric_only_reason"):
        _claim(numeric_only_reason=None)
    with pytest.raises(ValueError, match="kind"):
        _claim(kind="bigger")


def test_registry_ids_unique_and_documented():
    claims = all_claims()
    assert len(claims) >= 15
    ids = [c.id for c in claims]
    assert len(ids) == len(set(ids))
    for c in claims:
        assert c.statement and c.source
        assert c.proof or c.numeric_only_reason, c.id


def test_every_claim_proof_id_exists_in_proofs_check():
    pc = pytest.importorskip("proofs_check")
    from proofs_check._core import checks

    known = {c.check_id for c in checks()}
    missing = [(c.id, c.proof) for c in all_claims() if c.proof and c.proof not in known]
    assert not missing, missing


def test_load_proof_status(tmp_path):
    import json

    p = tmp_path / "p.json"
    p.write_text(json.dumps({"records": [
        {"check_id": "m.a", "claim_id": "A", "status": "passed"},
        {"check_id": "m.a", "claim_id": "A", "status": "failed"},
        {"check_id": "m.b", "claim_id": "B", "status": "passed"}]}))
    assert load_proof_status(p) == {"m.a": "failed", "m.b": "passed"}
    r = verify_claim(_claim(proof="m.b", numeric_only_reason=None), proof_status=load_proof_status(p))
    assert r.proof_status == "passed"
    assert load_proof_status(tmp_path / "missing.json") == {}


def test_verify_in_worker_processes_equals_in_order():
    # claims run in spawned processes draw from per-claim keys: same numbers as one by one
    from softmax_stability.claims._verify import verify

    ids = ["F5-lhs304-exponential-form", "F9-lhs304-infeasible-ln2", "DL1-needle-limit",
           "A4-ssa-double-exp-coefficient"]
    seq = verify(ids, seed=3, progress=False, workers=1)
    par = verify(ids, seed=3, progress=False, workers=2)
    assert [r.id for r in par] == ids
    for a, b in zip(seq, par):
        assert (a.verdict, a.instances, a.violations) == (b.verdict, b.instances, b.violations)
        # same programs on the same inputs in another process: equal to the last bit
        assert a.max_ratio == b.max_ratio and a.median_ratio == b.median_ratio, a.id


@pytest.mark.parametrize("workers", [0, -1, 1.5, True])
def test_verify_rejects_bad_worker_counts(workers):
    from softmax_stability.claims._verify import verify

    with pytest.raises(ValueError, match="workers"):
        verify(["F5-lhs304-exponential-form"], progress=False, workers=workers)


def test_every_proofs_check_id_cited_in_docs_exists():
    # a docstring that cites a symbolic check must name one that runs (ids drift when checks move)
    import pathlib
    import re

    import proofs_check

    ids = {c.check_id for c in proofs_check.checks()}
    fams = "softmax_jacobian|sparse_maps|focus_conditions|dilution|ssa_algebra|recent_theory"
    cite = re.compile(r"proofs_check[`]*\s+(?:check\s+)?ids?\s*:?\s*((?:[`]*(?:%s)\.[a-z_0-9]+[`]*"
                      r"(?:\s*(?:,|and|or)\s*|\s*\([^)]*\)\s*(?:and|,)?\s*)?)+)" % fams)
    root = pathlib.Path(__file__).resolve().parents[1]
    files = [*root.glob("softmax_stability/**/*.py"), *root.glob("figures/*.py"), root / "README.md"]
    cited, missing = set(), []
    for f in files:
        for m in cite.finditer(f.read_text()):
            for ref in re.findall(r"(?:%s)\.[a-z_0-9]+" % fams, m.group(1)):
                cited.add(ref)
                if ref not in ids:
                    missing.append(f"{f.relative_to(root)}: {ref}")
    assert len(cited) >= 10  # the pattern does find the citations
    assert not missing, missing


def _stall_on_f9(claim_id, seed, adversary, proof_status, mutants=False, settings="full"):
    """A worker task standing in for an XLA program that never completes, in claim F9 (module
    level: spawn imports it by name). F9 stalls only once the parent holds F5's result (a marker
    file written there), so the watchdog's kill never catches F5 still running, and then reports
    that it began an hour ago: the watchdog sees it overrun at once. Nothing here races the clock,
    so the test does not depend on how fast the machine spawns workers or runs F5."""
    import os
    import pathlib
    import time

    from softmax_stability.claims import _verify

    if claim_id == "F9-lhs304-infeasible-ln2":
        markers = pathlib.Path(os.environ["SOFTMAX_STABILITY_TEST_MARKERS"])
        (markers / f"stalled-{os.getpid()}").touch()
        while not (markers / "F5-lhs304-exponential-form").exists():
            time.sleep(0.05)
        _verify._report_start(claim_id, since=time.monotonic() - 3600.0)
        time.sleep(3600)
    return _verify._verify_one_in_worker(claim_id, seed, adversary, proof_status, mutants)


def _stall_always(claim_id, seed, adversary, proof_status, mutants=False, settings="full"):
    # a claim that never returns, timed by the watchdog's real clock (module level: spawn)
    import time

    time.sleep(3600)


def _assert_dead(pids):
    import os

    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        raise AssertionError(f"stalled worker {pid} is still alive")


def test_verify_watchdog_kills_stalled_workers_and_reports_the_claim(monkeypatch, tmp_path):
    from softmax_stability.claims import _verify

    run_in_workers = _verify._run_in_workers

    def marking_results(claims, workers, args, stall_timeout, on_result):
        def on(r):
            on_result(r)
            (tmp_path / r.id).touch()

        return run_in_workers(claims, workers, args, stall_timeout, on)

    monkeypatch.setenv("SOFTMAX_STABILITY_TEST_MARKERS", str(tmp_path))
    monkeypatch.setattr(_verify, "_run_in_workers", marking_results)
    monkeypatch.setattr(_verify, "_verify_one_in_worker", _stall_on_f9)
    ids = ["F5-lhs304-exponential-form", "F9-lhs304-infeasible-ln2"]
    # generous: F5 is a real claim and has this long however busy the machine; F9's stall is seen at once
    with pytest.warns(RuntimeWarning, match="F9-lhs304-infeasible-ln2 ran for more than 600 s") as rec:
        res = _verify.verify(ids, seed=3, progress=False, workers=2, stall_timeout=600.0)
    assert [r.id for r in res] == ids
    assert res[0].verdict == "pass"
    assert res[1].verdict == "ERROR" and "stalled" in res[1].error
    assert len(rec) == 2  # first stall: rerun; second: reported
    assert "rerunning" in str(rec[0].message) and "rerunning" not in str(rec[1].message)
    stalled = [int(f.name.split("-")[1]) for f in tmp_path.glob("stalled-*")]
    assert len(stalled) == 2  # F9 ran twice, in two processes, and both were killed, not waited for
    _assert_dead(stalled)


def test_verify_watchdog_times_claims_by_the_clock(monkeypatch):
    # claims that never return, and nothing else: the real clock decides, with nothing to race
    from softmax_stability.claims import _verify

    monkeypatch.setattr(_verify, "_verify_one_in_worker", _stall_always)
    ids = ["F5-lhs304-exponential-form", "F9-lhs304-infeasible-ln2"]
    with pytest.warns(RuntimeWarning, match="ran for more than 0.5 s") as rec:
        res = _verify.verify(ids, seed=3, progress=False, workers=2, stall_timeout=0.5)
    assert [r.verdict for r in res] == ["ERROR", "ERROR"]
    assert all("stalled" in r.error for r in res)
    assert len(rec) == 2


@pytest.mark.parametrize("t", [0, -1.0, float("nan"), "10"])
def test_verify_rejects_bad_stall_timeout(t):
    from softmax_stability.claims._verify import verify

    with pytest.raises(ValueError, match="stall_timeout"):
        verify(["F5-lhs304-exponential-form", "F9-lhs304-infeasible-ln2"], progress=False, workers=2,
               stall_timeout=t)
