"""Atomic writes and output-directory checks."""

import json
import os

import numpy as np
import pytest

from softmax_stability._io import atomic_write_json, atomic_write_text, atomic_write_with, ensure_writable_dir


def test_atomic_write_text_and_json(tmp_path):
    p = atomic_write_text(tmp_path / "a" / "x.txt", "hello")
    assert p.read_text() == "hello"
    q = atomic_write_json(tmp_path / "y.json", {"a": np.float64(1.5), "b": np.arange(3)})
    assert json.loads(q.read_text()) == {"a": 1.5, "b": [0, 1, 2]}


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "keep.txt"
    target.write_text("old")

    def boom(tmp):
        with open(tmp, "w") as fh:
            fh.write("partial")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        atomic_write_with(target, boom)
    assert target.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["keep.txt"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_dir_raises(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o500)
    with pytest.raises(PermissionError, match="not writable"):
        ensure_writable_dir(d)


def test_dir_under_a_file_raises(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(PermissionError, match="--out"):
        ensure_writable_dir(f / "sub", "--out")


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_outputs_respect_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        p = atomic_write_text(tmp_path / "out.txt", "x")
    finally:
        os.umask(old)
    assert (p.stat().st_mode & 0o777) == 0o666 & ~umask
