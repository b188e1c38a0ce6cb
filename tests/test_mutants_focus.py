"""The focus claims have power to fail: each passes, and the verifier kills every one of its mutants.

A mutant is an altered bound (a constant moved by 2%, or a wrong formula a derivation slip would
give: e^delta -> e^{delta/2}, k -> k+1, a dropped term); the verifier must not pass it. A
"tighter" mutant must be VIOLATED, a "looser" one (of a sharp claim) NOT SHARP in some tight
regime, a "perturbed" one anything but a pass.
"""

import pytest

import softmax_stability.claims as C
from softmax_stability.claims._verify import claim_mutants, verify_claim, verify_mutant

FOCUS = [c for c in C.all_claims() if c.family == "focus"]
CASES = [(c.id, m.name) for c in FOCUS for m in claim_mutants(c)]
EXPECTED = {"tighter": ("VIOLATED",), "looser": ("NOT SHARP",), "perturbed": ("VIOLATED", "NOT SHARP")}


def test_the_family_is_covered():
    assert len(FOCUS) == 18
    for c in FOCUS:
        assert len(claim_mutants(c)) >= 2, c.id
        if c.sharp:
            assert c.tight_regimes, f"{c.id}: a sharp claim names its tight regimes"


@pytest.mark.parametrize("claim_id", [c.id for c in FOCUS])
def test_focus_claim_passes(claim_id):
    r = verify_claim(C.get(claim_id))
    assert r.verdict == "pass", (r.verdict, r.error, r.worst_instance, r.regimes)
    assert all(g["reached"] for g in r.regimes), r.regimes


@pytest.mark.parametrize(("claim_id", "mutant"), CASES)
def test_focus_mutant_is_killed(claim_id, mutant):
    claim = C.get(claim_id)
    m = next(m for m in claim_mutants(claim) if m.name == mutant)
    r = verify_mutant(claim, m)
    assert r.killed, r.reason
    assert r.verdict in EXPECTED[m.change], (m.change, r.reason)
