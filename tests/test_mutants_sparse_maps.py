"""Claims with power, sparse maps family: each claim passes and every one of its mutants is killed.

A mutant is an altered bound (``claim_mutants``: the claim's structural mutants and the verifier's
automatic x0.98 / x1.02); killed means the verifier rejects it (VIOLATED, or NOT SHARP in a tight
regime), so each test is a check that the claim could fail.
"""

import pytest

from softmax_stability.claims import get
from softmax_stability.claims._verify import claim_mutants, verify_claim, verify_mutant

IDS = ("S1-sparsemax-jacobian", "S1b-sparsemax-spectral-one", "S2-entmax-jacobian", "S3-entmax-spectral-bound")
CASES = [(cid, m.name) for cid in IDS for m in claim_mutants(get(cid))]


@pytest.mark.parametrize("claim_id", IDS)
def test_claim_passes(claim_id):
    r = verify_claim(get(claim_id))
    assert r.verdict == "pass", (r.verdict, r.error, r.max_ratio, r.worst_instance)
    claim = get(claim_id)
    if claim.sharp:
        assert len(r.regimes) == len(claim.tight_regimes) >= 1
        assert all(g["reached"] for g in r.regimes), r.regimes


def test_every_claim_has_two_mutants():
    for cid in IDS:
        assert len(claim_mutants(get(cid))) >= 2, cid


@pytest.mark.parametrize(("claim_id", "mutant"), CASES)
def test_mutant_is_killed(claim_id, mutant):
    r = verify_mutant(get(claim_id), mutant)
    assert r.killed, r.reason
