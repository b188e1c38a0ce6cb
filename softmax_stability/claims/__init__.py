"""The claims registry and its verifier.

Every family module in this package (``softmax_jacobian``, ``sparse_maps``, ``focus``, ...) registers
its claims on import; this ``__init__`` imports them all. See :class:`Claim` for the fields and
``softmax-stability verify`` for the command that checks them.
"""

from __future__ import annotations

from softmax_stability.claims._registry import Claim, Mutant, TightRegime, all_claims, get, load_families, register

__all__ = ["Claim", "Mutant", "TightRegime", "register", "get", "all_claims", "verify", "verify_claim",
           "verify_mutant", "claim_mutants", "format_table", "claims_markdown"]


load_families()  # every family module registers its claims on import

from softmax_stability.claims._verify import (  # noqa: E402
    claim_mutants, format_table, verify, verify_claim, verify_mutant)


def claims_markdown() -> str:
    """The registry as a Markdown table (id, kind, statement, source, proof): the README's claims
    table is this output, and a test keeps the two in step."""
    esc = lambda t: str(t).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    kinds = {"upper": "measured <= bound", "lower": "measured >= bound", "equal": "measured = formula"}
    rows = ["| claim | checked as | statement | source | symbolic proof (`proofs_check` id) |",
            "|---|---|---|---|---|"]
    for c in all_claims():
        proof = f"`{c.proof}`" if c.proof else "numeric only"
        rows.append(f"| `{c.id}` | {kinds[c.kind]}{' (sharp)' if c.sharp else ''} | ${esc(c.statement)}$ "
                    f"| {esc(c.source)} | {proof} |")
    return "\n".join(rows)
