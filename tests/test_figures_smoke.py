"""Smoke version of every figure: runs each registered figure in the 'smoke' profile."""

import json

import pytest

from figures._common import registry, run_figure

NAMES = list(registry())
# The figures that train models or compute surfaces keep them in caches under their output
# directory (sf_runs, sf_landscapes, ssa_runs), shared by design: `make run` builds them into one
# directory, so the first figure of a group trains and the others load. The smoke tests do the
# same (one directory per module): every figure still runs its whole plotting/outcome path on
# the same results, the training path runs once per group (the first figure, in registry order),
# and the caches' training, resumption and corruption handling have their own tests
# (test_experiments, test_multiseed, test_ssa_retrieval, test_landscape).
SHARED_CACHE = {"sf_convergence_table", "sf_fig1", "sf_fig27", "sf_loss_landscape", "sf_table6_measured",
                "ssa_dilution_trained", "ssa_retrieval_vs_length", "ssa_steps_to_target"}


@pytest.fixture(scope="module")
def shared_out(tmp_path_factory):
    return tmp_path_factory.mktemp("figures_shared_cache")


@pytest.mark.parametrize("name", NAMES)
def test_figure_smoke(name, tmp_path, shared_out):
    assert SHARED_CACHE <= set(NAMES), SHARED_CACHE - set(NAMES)
    out = shared_out if name in SHARED_CACHE else tmp_path
    if name == "bound_vs_autodiff":  # feed it a small verification.json instead of a full verify
        from softmax_stability.claims import get
        from softmax_stability.claims._verify import verify_claim

        # random instances only: the figure plots whatever ratios the file holds, and the searches
        # (adversary, tight regimes) are the verifier's tests' business, not this figure's
        res = [verify_claim(get(i), adversary=False).to_json()
               for i in ("J5b-softmax-one-norm-half", "D2-dispersion-pmax")]
        (out / "verification.json").write_text(json.dumps({"results": res}))
    prov = run_figure(name, out, profile="smoke", show_progress=False)
    assert prov["figure"] == name and prov["wall_time_s"] >= 0
    prov_file = out / f"{name}.provenance.json"
    assert json.loads(prov_file.read_text())["jax_version"]
    assert prov["files"], "a figure must write at least one file"
    for f in prov["files"]:
        assert (out / f).stat().st_size > 0, f
    assert any(f.endswith(".png") for f in prov["files"]) or any(f.endswith(".md") for f in prov["files"])
    # the measured outcome the report prints under the figure (ctx.set_outcome), in its provenance
    outcome = json.loads(prov_file.read_text())["outcome"]
    assert isinstance(outcome, str) and outcome.strip(), f"{name} sets no outcome (ctx.set_outcome)"
    if name in ("sf_fig21", "sf_fig22"):  # every grid point lies within one grid step of the closed form
        gaps = prov["params"]["max_grid_minus_closed"]
        gaps = gaps.values() if isinstance(gaps, dict) else [gaps]
        step = prov["params"]["grid_precision"]
        assert all(0 < g <= step * (1 + 1e-9) for g in gaps), (gaps, step)
        assert prov["params"]["grid_points_compared"] > (100 if name == "sf_fig21" else 400)


def test_unknown_figure_lists_valid(tmp_path):
    with pytest.raises(KeyError, match="valid names"):
        run_figure("nope", tmp_path)


def test_bad_profile(tmp_path):
    with pytest.raises(ValueError, match="profile"):
        run_figure(NAMES[0], tmp_path, profile="huge")


def test_rerun_reuses_cache_and_redoes_what_changed(tmp_path):
    # the cache logic is the pipeline's, the same for every figure: a cheap one (a table, ~0.5 s
    # a run against ~1.7 s for sf_fig22) keeps the five runs short
    name = "ssa_overhead_table"
    first = run_figure(name, tmp_path, profile="smoke", show_progress=False, force=False)
    assert not first.get("cached")
    again = run_figure(name, tmp_path, profile="smoke", show_progress=False, force=False)
    assert again.get("cached") and again["fingerprint"] == first["fingerprint"]
    # another seed is another computation; a lost output file invalidates the cache
    assert not run_figure(name, tmp_path, profile="smoke", seed=1, show_progress=False, force=False).get("cached")
    (tmp_path / first["files"][0]).unlink()
    assert not run_figure(name, tmp_path, profile="smoke", seed=0, show_progress=False, force=False).get("cached")
    # force redoes even when up to date
    assert not run_figure(name, tmp_path, profile="smoke", show_progress=False, force=True).get("cached")
