"""The softmax-Jacobian claims (J0-J6b) pass, and every one of their mutants is killed.

A mutant is the claim with its bound altered (the automatic x(1 + 1e-6) of an identity, x0.98 /
x1.02 of a sharp bound, and the structural ones stated with each claim); killed means the verifier
does not pass it (VIOLATED or NOT SHARP). Seed 0, as ``make run``; ``test_verify_all`` runs seed 1.
"""

import pytest

from softmax_stability.claims import all_claims, claim_mutants
from softmax_stability.claims._verify import verify_claim, verify_mutant

CLAIMS = [c for c in all_claims() if c.family == "softmax_jacobian"]
MUTANTS = [(c, m.name) for c in CLAIMS for m in claim_mutants(c)]


def test_every_claim_has_two_mutants_and_sharp_ones_have_regimes():
    assert {c.id.split("-")[0] for c in CLAIMS} == {"J0", "J1", "J1b", "J2", "J3", "J3b", "J4", "J5", "J5b",
                                                     "J6", "J6b"}
    for c in CLAIMS:
        assert len(claim_mutants(c)) >= 2, c.id
        assert not c.sharp or c.tight_regimes, c.id


@pytest.mark.parametrize("claim", CLAIMS, ids=[c.id for c in CLAIMS])
def test_claim_passes(claim):
    r = verify_claim(claim)
    assert r.verdict == "pass", (r.verdict, r.error, r.max_ratio, r.worst_instance, r.regimes)
    assert all(g["reached"] for g in r.regimes), r.regimes
    if claim.kind == "equal":
        # the identities report measure/bound: 1 to rounding on every instance (no ratio of two
        # rounding errors passing on an absolute tolerance)
        assert abs(r.max_ratio - 1) < 1e-10, r.max_ratio


@pytest.mark.parametrize("claim,mutant", MUTANTS, ids=[f"{c.id}[{m}]" for c, m in MUTANTS])
def test_mutant_is_killed(claim, mutant):
    r = verify_mutant(claim, mutant)
    assert r.killed, f"{claim.id}: mutant {mutant!r} ({r.change}) survived: {r.reason}"
