"""The command line: subcommands, errors that list valid choices, verify output."""

import json

import pytest

from softmax_stability.cli import main


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
    rc = main(["verify", "J5-softmax-one-norm", "D2-dispersion-pmax", "--out", str(tmp_path), "--no-progress"])
    assert rc == 0
    data = json.loads((tmp_path / "verification.json").read_text())
    assert [r["id"] for r in data["results"]] == ["J5-softmax-one-norm", "D2-dispersion-pmax"]
    assert all(r["verdict"] == "pass" for r in data["results"])
    assert "J5-softmax-one-norm" in capsys.readouterr().out


def test_verify_unknown_claim_lists_valid(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["verify", "no-such-claim", "--out", str(tmp_path)])
    assert "J2-softmax-spectral-half" in capsys.readouterr().err


def test_figures_unknown_name_lists_valid(capsys):
    with pytest.raises(SystemExit):
        main(["figures", "no_such_figure"])
    assert "jacobian_norm_vs_sparsity" in capsys.readouterr().err


def test_figures_unknown_profile(capsys):
    with pytest.raises(SystemExit):
        main(["figures", "--profile", "huge"])
    assert "quick" in capsys.readouterr().err


def test_unwritable_out_fails_before_work(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(SystemExit):
        main(["verify", "--out", str(f / "sub")])
    assert "not writable" in capsys.readouterr().err


def test_bench_unknown_name(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "warp-drive"])
    assert "jacobian" in capsys.readouterr().err
