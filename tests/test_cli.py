"""The command line: subcommands, errors that list valid choices, verify output."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from softmax_stability.cli import main

REPO = Path(__file__).resolve().parent.parent


def test_unknown_subcommand_lists_valid(capsys):
    with pytest.raises(SystemExit) as e:
        main(["frobnicate"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "frobnicate" in err and "verify" in err and "figures" in err


def test_info(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "jax" in out and "device" in out


def test_verify_subset_writes_json(tmp_path, capsys):
    # the subset: an identity and a sharp claim with an adversary and a tight regime. F3 has both,
    # like D2 (used here before), at a fifth of D2's compiled programs; every claim's verdict is
    # checked in tests/test_verify_all.py
    ids = ["J5-softmax-one-norm", "F3-key-mass-full"]
    rc = main(["verify", *ids, "--out", str(tmp_path), "--no-progress"])
    assert rc == 0
    data = json.loads((tmp_path / "verification.json").read_text())
    assert [r["id"] for r in data["results"]] == ids
    assert all(r["verdict"] == "pass" for r in data["results"])
    assert "J5-softmax-one-norm" in capsys.readouterr().out


def _register_test_claim(claim_id, measure):
    """A claim registered for one test (sqrt(x) <= x fails on (0, 1); a raising measure is an ERROR)."""
    import jax.numpy as jnp

    from softmax_stability.claims import Claim, register

    return register(Claim(
        id=claim_id, family="test", statement="measure <= x", source="tests/test_cli.py", kind="upper",
        bound=lambda p: p["x"], measure=measure, sample=lambda key: [{"x": jnp.linspace(0.0, 1.0, 11)}],
        numeric_only_reason="a deliberately false claim for the exit-status test"))


@pytest.fixture
def scratch_claims():
    """Yields a registering function; every claim it registered is removed afterwards."""
    from softmax_stability.claims import _registry

    ids = []

    def add(claim_id, measure):
        ids.append(claim_id)
        return _register_test_claim(claim_id, measure)

    yield add
    for i in ids:
        _registry._REGISTRY.pop(i, None)
    assert not set(ids) & {c.id for c in _registry.all_claims()}


def _boom(p):
    raise RuntimeError("measurement failed")


@pytest.mark.parametrize("measure,verdict", [(lambda p: p["x"] ** 0.5, "VIOLATED"), (_boom, "ERROR")],
                         ids=["violated", "error"])
def test_verify_exits_nonzero_when_a_claim_fails(scratch_claims, tmp_path, capsys, measure, verdict):
    from softmax_stability.claims import all_claims

    bad = "ZZ-test-false-claim"
    scratch_claims(bad, measure)
    # one claim: verify runs it in this process, where it is registered
    rc = main(["verify", bad, "--out", str(tmp_path), "--no-progress"])
    assert rc == 1
    captured = capsys.readouterr()
    assert f"verify FAILED for: {bad}" in captured.err
    assert verdict in captured.out
    data = json.loads((tmp_path / "verification.json").read_text())
    assert [(r["id"], r["verdict"]) for r in data["results"]] == [(bad, verdict)]
    if verdict == "VIOLATED":
        assert data["results"][0]["violations"] == 9 and data["results"][0]["max_ratio"] > 1
    # the same command on a true claim exits 0 (the status reflects the verdict, not the command)
    assert main(["verify", "J5-softmax-one-norm", "--out", str(tmp_path), "--no-progress"]) == 0
    assert bad in [c.id for c in all_claims()]  # still registered here; the fixture removes it


def test_verify_unknown_claim_lists_valid(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["verify", "no-such-claim", "--out", str(tmp_path)])
    assert "J2-softmax-spectral-half" in capsys.readouterr().err


def test_figures_unknown_name_lists_valid(capsys):
    from figures._cli import main as pipeline_main

    with pytest.raises(SystemExit):
        pipeline_main(["no_such_figure"])
    assert "jacobian_norm_vs_sparsity" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--profile", "huge"], ["run", "--profile", "huge"]])
def test_figures_and_run_take_the_same_profiles(argv, capsys):
    from figures._cli import main as pipeline_main
    from figures._common import PROFILES

    with pytest.raises(SystemExit):
        pipeline_main(argv)
    err = capsys.readouterr().err
    assert all(p in err for p in PROFILES), err


def test_pipeline_help_names_the_console_script_and_shows_defaults():
    env = {**os.environ, "SOFTMAX_STABILITY_PROG": "softmax-stability"}
    for argv, prog in ((["--help"], "softmax-stability figures"), (["run", "--help"], "softmax-stability run")):
        out = subprocess.run([sys.executable, "-m", "figures", *argv], capture_output=True, text=True, env=env,
                             cwd=REPO, check=True).stdout
        assert out.startswith(f"usage: {prog}"), out[:200]
        assert "(default: quick)" in out and "(default: 0)" in out
    out = subprocess.run([sys.executable, "-m", "figures", "--help"], capture_output=True, text=True,
                         cwd=REPO, check=True).stdout
    assert out.startswith("usage: python -m figures")


def test_every_option_has_help_text():
    from softmax_stability.cli import build_parser

    ap = build_parser()
    subs = next(a for a in ap._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in subs.choices.items():
        for a in p._actions:
            if a.option_strings and a.dest != "help":
                assert a.help, f"softmax-stability {name} {a.option_strings} has no help text"


def test_checkout_commands_outside_a_checkout_say_what_they_need(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for cmd in ("figures", "run", "report", "bench"):
        assert main([cmd]) == 2
        err = capsys.readouterr().err
        assert "source checkout" in err and "verify" in err, err


def test_unwritable_out_fails_before_work(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(SystemExit):
        main(["verify", "--out", str(f / "sub")])
    assert "not writable" in capsys.readouterr().err


def test_bench_unknown_name(capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    with pytest.raises(SystemExit):
        main(["bench", "warp-drive"])
    assert "jacobian" in capsys.readouterr().err


def test_run_reuses_unchanged_proofs_and_verify(tmp_path, monkeypatch, capsys):
    """A second `python -m figures run` redoes neither step when no code they import changed; --force
    redoes both, and a failed step is never reused."""
    from softmax_stability import cli as lib_cli

    import figures._cli as pipeline
    from figures import _report

    calls = []

    def fake_lib_main(argv):
        calls.append(argv[0])
        out = Path(argv[argv.index("--out") + 1])
        (out / ("proofs_check.json" if argv[0] == "proofs" else "verification.json")).write_text("{}")
        return 0

    monkeypatch.setattr(lib_cli, "main", fake_lib_main)
    monkeypatch.setattr(pipeline, "figures_main", lambda argv: 0)
    monkeypatch.setattr(_report, "main", lambda argv: 0)
    monkeypatch.setattr(pipeline, "_enable_cache", lambda: None)
    argv = ["--out", str(tmp_path), "--profile", "smoke"]
    assert pipeline.run_main(argv) == 0 and calls == ["proofs", "verify"]
    assert pipeline.run_main(argv) == 0 and calls == ["proofs", "verify"]
    assert "up to date" in capsys.readouterr().out
    assert pipeline.run_main(argv + ["--seed", "1"]) == 0 and calls[2:] == ["verify"]  # verify depends on the seed
    assert pipeline.run_main(argv + ["--force"]) == 0 and calls[3:] == ["proofs", "verify"]
    monkeypatch.setattr(lib_cli, "main", lambda a: (calls.append(a[0]), 1)[1])
    (tmp_path / ".proofs_check.json.stamp.json").unlink()
    assert pipeline.run_main(argv) == 1
    n = len(calls)
    assert pipeline.run_main(argv) == 1 and calls[n:] == ["proofs"]  # a failed step is redone, verify reused


def test_run_keeps_every_compiled_program_in_the_checkout_cache(monkeypatch):
    """`python -m figures run` calls the library's verify in-process, which enables the library's
    default cache (~/.cache): the checkout's cache must win, for verify and its spawned workers too."""
    from figures import _cli as pipeline
    from softmax_stability import cli as lib_cli

    seen = []
    monkeypatch.setattr(lib_cli, "enable_compilation_cache", lambda path=None: seen.append(
        Path(path) if path is not None else lib_cli.default_cache_dir()))
    monkeypatch.setenv("SOFTMAX_STABILITY_JAX_CACHE", "placeholder")  # restored after the test
    monkeypatch.delenv("SOFTMAX_STABILITY_JAX_CACHE")
    pipeline._enable_cache()
    lib_cli.enable_compilation_cache()  # what `verify` does (and a spawned worker inherits the env)
    assert seen == [pipeline.JAX_CACHE, pipeline.JAX_CACHE]
