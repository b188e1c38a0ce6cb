"""Power to fail of the lp_norms claims: each passes, and the verifier kills every one of its mutants
(its own structural ones and the automatic constant/identity ones, `claim_mutants`)."""

import pytest

from softmax_stability.claims import all_claims, get
from softmax_stability.claims._verify import claim_mutants, verify_claim, verify_mutant

FAMILY = "lp_norms"
CLAIMS = [c for c in all_claims() if c.family == FAMILY]
CASES = [(c.id, m.name) for c in CLAIMS for m in claim_mutants(c)]


def test_family_is_registered():
    assert CLAIMS and all(len(claim_mutants(c)) >= 2 for c in CLAIMS)


@pytest.mark.parametrize("claim_id", [c.id for c in CLAIMS])
def test_claim_passes(claim_id):
    r = verify_claim(get(claim_id))
    assert r.verdict == "pass", (r.verdict, r.error, r.worst_instance)
    assert all(g["reached"] for g in r.regimes), r.regimes


@pytest.mark.parametrize("claim_id, mutant_name", CASES)
def test_mutant_killed(claim_id, mutant_name):
    r = verify_mutant(get(claim_id), mutant_name)
    assert r.killed, r.reason
