"""The README's examples run, and its claims table and gallery list everything that is registered."""

import os
import re
import subprocess
import sys
from pathlib import Path

from figures._common import registry
from softmax_stability.claims import all_claims

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert len(blocks) >= 5
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", "\n".join(blocks)], capture_output=True, text=True,
                          timeout=1800, env=env)  # a hang guard, not a speed limit
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_claims_table_lists_every_claim():
    table = README.split("<!-- claims-table", 1)[1].split("<!-- /claims-table -->", 1)[0]
    missing = [c.id for c in all_claims() if f"`{c.id}`" not in table]
    assert not missing, f"README claims table is stale; regenerate it (missing {missing})"


def test_gallery_lists_every_figure():
    missing = [n for n in registry() if f"**`{n}`**" not in README]
    assert not missing, f"README gallery is stale (missing {missing})"
