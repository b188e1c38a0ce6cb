"""Checksummed cache entries of experiment runs (``result.json`` + ``params.npz``), shared by the
SF runner and the trained-SSA runs: one way to write a tree of arrays, one way to read a finished
entry back and refuse it when any checksum or the configuration key does not match."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["sha256", "payload_sha", "tree_to_npz", "npz_to_tree", "read_finished_payload"]


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def payload_sha(obj: dict) -> str:
    """Checksum of a JSON payload (key order does not matter)."""
    return sha256(json.dumps(obj, sort_keys=True).encode())


def tree_to_npz(tree) -> bytes:
    """The leaves of ``tree`` as ``.npz`` bytes (``arr_0``, ``arr_1``, ... in leaf order)."""
    buf = io.BytesIO()
    np.savez(buf, *[np.asarray(x) for x in jax.tree_util.tree_leaves(tree)])
    return buf.getvalue()


def npz_to_tree(data: bytes, like):
    """:func:`tree_to_npz` undone onto the structure, shapes and dtypes of ``like``."""
    with np.load(io.BytesIO(data)) as z:
        leaves = [z[f"arr_{i}"] for i in range(len(z.files))]
    ref, treedef = jax.tree_util.tree_flatten(like)
    if len(leaves) != len(ref) or any(a.shape != tuple(np.shape(b)) for a, b in zip(leaves, ref)):
        raise ValueError("stored arrays do not match the model's parameter structure")
    return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(a, dtype=b.dtype) for a, b in zip(leaves, ref)])


def read_finished_payload(entry: Path, key: str) -> dict[str, Any] | None:
    """The payload of the finished entry ``entry`` for configuration ``key``; None if it has not
    finished. Raises ValueError naming the entry if its ``result.json`` or ``params.npz`` checksum,
    or its key, does not match (a corrupt or foreign entry is rerun, never trusted)."""
    rpath = Path(entry) / "result.json"
    if not rpath.exists():
        return None
    try:
        doc = json.loads(rpath.read_text())
        payload = doc["payload"]
        if doc.get("sha256") != payload_sha(payload):
            raise ValueError("result.json checksum mismatch")
        if payload.get("key") != key:
            raise ValueError("result.json belongs to another configuration")
        if sha256((Path(entry) / "params.npz").read_bytes()) != payload["params_sha256"]:
            raise ValueError("params.npz checksum mismatch")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"corrupt cache entry {entry}: {err}") from err
    return payload
