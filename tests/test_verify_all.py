"""Every registered claim passes the verifier (random + adversarial instances, float64).

This is the test-suite twin of ``softmax-stability verify``: one test per claim, so a failure names
the claim and the worst instance found.
"""

import pytest

from softmax_stability.claims import all_claims
from softmax_stability.claims._verify import verify_claim

IDS = [c.id for c in all_claims()]


@pytest.mark.parametrize("claim", all_claims(), ids=IDS)
def test_claim_holds(claim):
    r = verify_claim(claim, seed=1)  # a different seed from `make run`'s default 0
    assert r.error is None, r.error
    assert r.violations == 0, f"{claim.id}: max ratio {r.max_ratio}, worst {r.worst_instance}"
    if claim.sharp:
        assert r.sharp_reached, f"{claim.id}: sharp bound only reached ratio {r.max_ratio}"
    assert r.verdict == "pass"
