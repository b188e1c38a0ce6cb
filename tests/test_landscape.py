"""Loss landscapes: direction normalisation, the surface, the Lipschitz estimate (true distance).

Expected values are computed independently: per-filter/per-tensor norms with NumPy, the quadratic
surface from its closed form, the linear-loss slopes from inner products of the directions.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from softmax_stability.experiments import landscape as ls

RNG = np.random.default_rng(0)
# a stacked [blocks, in, out] weight, a plain [in, out] weight, a bias, a stacked bias
PARAMS = {"stk": RNG.normal(size=(3, 4, 5)), "w": RNG.normal(size=(6, 4)), "b": RNG.normal(size=(4,)),
          "sb": RNG.normal(size=(3, 5))}
STACK = {"stk": 1, "w": 0, "b": 0, "sb": 1}


def _np(tree):
    return jax.tree_util.tree_map(np.asarray, tree)


def test_filter_normalisation_matches_per_filter_norms():
    d = _np(ls.random_direction(jax.random.PRNGKey(1), PARAMS, normalization="filter", stack_axes=STACK))
    # filters are the last axis (output units); stacked axis 0 of "stk" separates tensors
    np.testing.assert_allclose(np.linalg.norm(d["stk"], axis=1), np.linalg.norm(PARAMS["stk"], axis=1), rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(d["w"], axis=0), np.linalg.norm(PARAMS["w"], axis=0), rtol=1e-12)
    # 1-D tensors (biases, also per stacked block) get a zero direction, as Li et al.'s biasbn option
    assert not d["b"].any() and not d["sb"].any()
    # the direction is not the parameters themselves (random per filter)
    assert not np.allclose(d["w"] / np.linalg.norm(d["w"], axis=0), PARAMS["w"] / np.linalg.norm(PARAMS["w"], axis=0))
    # filter_axis=0: rows (the embedding's layout)
    d0 = _np(ls.random_direction(jax.random.PRNGKey(1), {"e": PARAMS["w"]}, normalization="filter", filter_axis=0))
    np.testing.assert_allclose(np.linalg.norm(d0["e"], axis=1), np.linalg.norm(PARAMS["w"], axis=1), rtol=1e-12)


def test_tensor_normalisation_per_tensor_and_per_stacked_block():
    d = _np(ls.random_direction(jax.random.PRNGKey(2), PARAMS, normalization="tensor", stack_axes=STACK))
    np.testing.assert_allclose(np.linalg.norm(d["stk"].reshape(3, -1), axis=1),
                               np.linalg.norm(PARAMS["stk"].reshape(3, -1), axis=1), rtol=1e-12)
    for k in ("w", "b"):
        np.testing.assert_allclose(np.linalg.norm(d[k]), np.linalg.norm(PARAMS[k]), rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(d["sb"], axis=1), np.linalg.norm(PARAMS["sb"], axis=1), rtol=1e-12)


def test_zero_norm_groups_get_zero_direction_and_determinism():
    p = {"w": np.array([[0.0, 1.0], [0.0, 2.0]])}  # first filter (column) is zero
    d = _np(ls.random_direction(jax.random.PRNGKey(0), p, normalization="filter"))
    assert np.all(d["w"][:, 0] == 0) and np.isclose(np.linalg.norm(d["w"][:, 1]), np.sqrt(5))
    a1, a2 = ls.random_directions(7, PARAMS, stack_axes=STACK)
    b1, b2 = ls.random_directions(7, PARAMS, stack_axes=STACK)
    c1, _ = ls.random_directions(8, PARAMS, stack_axes=STACK)
    assert all(np.array_equal(x, y) for x, y in zip(jax.tree_util.tree_leaves(a1), jax.tree_util.tree_leaves(b1)))
    assert not np.allclose(a1["w"], a2["w"]) and not np.allclose(a1["w"], c1["w"])


def test_sf_model_layout():
    from softmax_stability.experiments.sf_model import ModelConfig, init_params

    cfg = ModelConfig(n_tokens=3, n_classes=2, seq_len=6, d=8, d_mlp=8, blocks=2)
    p = init_params(jax.random.PRNGKey(0), cfg)
    d1, _ = ls.random_directions(ls.SF_DIRECTION_SEED, p, stack_axes=ls.SF_STACK_AXES, filter_axis=ls.SF_FILTER_AXES)
    wq, dq = np.asarray(p["blocks"]["attn"]["wq"]["w"]), np.asarray(d1["blocks"]["attn"]["wq"]["w"])
    assert dq.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(dq.reshape(2, -1), axis=1), np.linalg.norm(wq.reshape(2, -1), axis=1),
                               rtol=1e-5)
    f1, _ = ls.random_directions(0, p, normalization="filter", stack_axes=ls.SF_STACK_AXES,
                                 filter_axis=ls.SF_FILTER_AXES)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(f1["embed"]), axis=1),
                               np.linalg.norm(np.asarray(p["embed"]), axis=1), rtol=1e-5)


def test_surface_centre_is_loss_at_trained_params():
    from softmax_stability.experiments.sf_model import ModelConfig, apply, init_params, loss_and_accuracy

    cfg = ModelConfig(n_tokens=3, n_classes=2, seq_len=6, d=8, d_mlp=8, blocks=1, variant="TOPK(3)")
    p = init_params(jax.random.PRNGKey(0), cfg)
    x = jnp.asarray(np.random.default_rng(1).integers(0, 2, (20, 6)), jnp.int32)
    y = x[:, 0]

    def loss(q):
        return loss_and_accuracy(apply(q, x, cfg), y)[0]

    d1, d2 = ls.random_directions(3, p, stack_axes=ls.SF_STACK_AXES)
    f = ls.loss_surface(loss, p, d1, d2, np.array([-0.5, 0.0, 0.5]), np.array([-1.0, 0.0]))
    assert f.shape == (3, 2) and f.dtype == jnp.float32  # a float64 grid does not promote the model
    # float32 forward pass, jitted inside lax.map vs eager: rounding-level agreement
    np.testing.assert_allclose(float(f[1, 1]), float(loss(p)), rtol=2e-6)
    assert abs(float(f[0, 0]) - float(loss(p))) > 1e-4  # the other points moved


def _quadratic_setup(seed=0):
    r = np.random.default_rng(seed)
    th = {"a": r.normal(size=(3,)), "b": r.normal(size=(2, 2))}
    n = 7
    m = r.normal(size=(n, n))
    A = m @ m.T
    c = r.normal(size=n)

    def flat(t):
        return jnp.concatenate([t["a"].ravel(), t["b"].ravel()])

    def loss(t):
        v = flat(t)
        return 0.5 * v @ A @ v + c @ v

    d1 = {"a": r.normal(size=(3,)), "b": r.normal(size=(2, 2))}
    d2 = {"a": r.normal(size=(3,)), "b": r.normal(size=(2, 2))}
    return th, d1, d2, A, c, (lambda t: np.concatenate([t["a"].ravel(), t["b"].ravel()])), loss


@pytest.mark.parametrize("batch_size", [None, 4])
def test_quadratic_loss_gives_analytic_surface(batch_size):
    th, d1, d2, A, c, flat, loss = _quadratic_setup()
    alphas, betas = np.linspace(-1, 1, 5), np.array([-0.3, 0.1, 0.7])
    f = np.asarray(ls.loss_surface(loss, th, d1, d2, alphas, betas, batch_size=batch_size))
    t0, u, v = flat(th), flat(d1), flat(d2)
    g = A @ t0 + c
    L0 = 0.5 * t0 @ A @ t0 + c @ t0
    al, be = alphas[:, None], betas[None, :]
    expect = (L0 + al * (g @ u) + be * (g @ v)
              + 0.5 * (al ** 2 * (u @ A @ u) + 2 * al * be * (u @ A @ v) + be ** 2 * (v @ A @ v)))
    np.testing.assert_allclose(f, expect, rtol=1e-12, atol=1e-12)


def test_lipschitz_of_linear_loss_is_gradient_norm_along_plane():
    r = np.random.default_rng(3)
    th = {"a": r.normal(size=(4,)), "b": r.normal(size=(3,))}
    d1 = {"a": r.normal(size=(4,)), "b": r.normal(size=(3,))}
    d2 = {"a": r.normal(size=(4,)), "b": r.normal(size=(3,))}
    u = np.concatenate([d1["a"], d1["b"]])
    v = np.concatenate([d2["a"], d2["b"]])
    alphas = np.array([-1.0, -0.4, 0.0, 0.25, 1.0])  # uneven spacing: a linear loss has constant slopes
    betas = np.linspace(-0.5, 0.5, 4)

    def run(gvec, **kw):
        def loss(t):
            return jnp.concatenate([t["a"], t["b"]]) @ gvec
        f = ls.loss_surface(loss, th, d1, d2, alphas, betas)
        return float(ls.landscape_lipschitz(f, th, d1, d2, alphas, betas, **kw))

    # a gradient lying along d1: the estimate is the norm of the gradient's projection on the plane
    gvec = 2.5 * u
    basis = np.stack([u, v], axis=1)
    proj = basis @ np.linalg.lstsq(basis, gvec, rcond=None)[0]
    np.testing.assert_allclose(run(gvec), np.linalg.norm(proj), rtol=1e-10)
    # a general gradient: the largest directional derivative over the edge directions
    gvec = r.normal(size=7)
    s1, s2 = abs(gvec @ u) / np.linalg.norm(u), abs(gvec @ v) / np.linalg.norm(v)
    np.testing.assert_allclose(run(gvec), max(s1, s2), rtol=1e-10)
    assert run(gvec) <= np.linalg.norm(basis @ np.linalg.lstsq(basis, gvec, rcond=None)[0]) + 1e-12
    np.testing.assert_allclose(run(gvec, percentile=0.0), min(s1, s2), rtol=1e-10)
    # the SF authors' convention: per unit grid coefficient, |<g, d_i>|
    np.testing.assert_allclose(run(gvec, distance="grid"), max(abs(gvec @ u), abs(gvec @ v)), rtol=1e-10)


def test_diagonal_edges_use_the_cross_term():
    th = {"w": np.zeros(2)}
    u, v = np.array([1.0, 0.0]), np.array([1.0, 1.0])  # correlated directions: <u, v> = 1
    gvec = np.array([0.3, -2.0])
    a = b = np.linspace(0, 1, 3)
    f = a[:, None] * (gvec @ u) + b[None, :] * (gvec @ v)  # linear loss on the grid
    s = ls.landscape_slopes(f, th, {"w": u}, {"w": v}, a, b, neighbours="all")
    np.testing.assert_allclose(np.asarray(s["diag"]), abs(gvec @ (u + v)) / np.linalg.norm(u + v), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(s["anti"]), abs(gvec @ (u - v)) / np.linalg.norm(u - v), rtol=1e-12)


def test_radius_window_on_a_quadratic():
    th = {"w": np.zeros(2)}
    d1, d2 = {"w": np.array([1.0, 0.0])}, {"w": np.array([0.0, 1.0])}
    a = b = np.linspace(-1, 1, 5)
    f = np.broadcast_to(a[:, None] ** 2, (5, 5))  # L = alpha^2: edge slope |a_i + a_{i+1}|
    assert float(ls.landscape_lipschitz(f, th, d1, d2, a, b)) == pytest.approx(1.5)
    assert float(ls.landscape_lipschitz(f, th, d1, d2, a, b, radius=0.5)) == pytest.approx(0.5)
    jitted = jax.jit(lambda s: ls.landscape_lipschitz(s, th, d1, d2, a, b, radius=0.5))
    assert float(jitted(jnp.asarray(f))) == pytest.approx(0.5)


def test_nan_and_inf_losses_propagate():
    th = {"w": np.zeros(2)}
    d1, d2 = {"w": np.array([1.0, 0.0])}, {"w": np.array([0.0, 1.0])}
    a = b = np.linspace(-1, 1, 5)
    f = np.zeros((5, 5))
    f[4, 4] = np.nan
    assert np.isnan(float(ls.landscape_lipschitz(f, th, d1, d2, a, b)))
    assert float(ls.landscape_lipschitz(f, th, d1, d2, a, b, radius=0.5)) == 0.0  # NaN outside the window
    f[4, 4] = np.inf
    assert float(ls.landscape_lipschitz(f, th, d1, d2, a, b)) == np.inf


def test_bad_input():
    th = {"w": np.zeros(2)}
    d = {"w": np.array([1.0, 0.0])}
    e = {"w": np.array([0.0, 1.0])}
    g = np.array([0.0, 1.0])
    f = np.zeros((2, 2))
    loss = lambda t: jnp.sum(t["w"])  # noqa: E731
    with pytest.raises(TypeError, match="loss_fn"):
        ls.loss_surface("nope", th, d, e, g, g)
    with pytest.raises(ValueError, match="d1"):
        ls.loss_surface(loss, th, {"v": np.zeros(2)}, e, g, g)
    with pytest.raises(ValueError, match="d2"):
        ls.loss_surface(loss, th, d, {"w": np.zeros(3)}, g, g)
    with pytest.raises(ValueError, match="alphas"):
        ls.loss_surface(loss, th, d, e, np.zeros((2, 2)), g)
    with pytest.raises(ValueError, match="betas"):
        ls.loss_surface(loss, th, d, e, g, [0.0, np.nan])
    with pytest.raises(ValueError, match="scalar"):
        ls.loss_surface(lambda t: t["w"], th, d, e, g, g)
    with pytest.raises(ValueError, match="batch_size"):
        ls.loss_surface(loss, th, d, e, g, g, batch_size=0)
    with pytest.raises(TypeError, match="params"):
        ls.loss_surface(loss, {"w": np.zeros(2, np.int32)}, d, e, g, g)
    with pytest.raises(ValueError, match="surface"):
        ls.landscape_lipschitz(np.zeros((2, 3)), th, d, e, g, g)
    with pytest.raises(ValueError, match="alphas"):
        ls.landscape_lipschitz(f, th, d, e, [1.0, 0.0], g)
    with pytest.raises(ValueError, match="radius"):
        ls.landscape_lipschitz(f, th, d, e, g, g, radius=-1.0)
    with pytest.raises(ValueError, match="radius"):
        ls.landscape_lipschitz(f, th, d, e, g - 0.5, g - 0.5, radius=0.1)  # no pair inside
    with pytest.raises(ValueError, match="percentile"):
        ls.landscape_lipschitz(f, th, d, e, g, g, percentile=101)
    with pytest.raises(ValueError, match="neighbours"):
        ls.landscape_slopes(f, th, d, e, g, g, neighbours="diag")
    with pytest.raises(ValueError, match="distance"):
        ls.landscape_slopes(f, th, d, e, g, g, distance="coef")
    with pytest.raises(ValueError, match="d2"):
        ls.landscape_lipschitz(f, th, d, {"w": np.zeros(2)}, g, g)  # zero direction: zero distance
    with pytest.raises(ValueError, match="alphas or betas"):
        ls.landscape_slopes(np.zeros((1, 1)), th, d, e, [0.0], [0.0])
    with pytest.raises(ValueError, match="normalization"):
        ls.random_direction(jax.random.PRNGKey(0), th, normalization="layer")
    with pytest.raises(ValueError, match="stack_axes"):
        ls.random_direction(jax.random.PRNGKey(0), th, stack_axes=3)
    with pytest.raises(ValueError, match="filter_axis"):
        ls.random_direction(jax.random.PRNGKey(0), {"w": np.zeros((2, 2))}, normalization="filter", filter_axis=5)
    with pytest.raises(TypeError, match="seed_or_key"):
        ls.random_directions("seed", th)
    with pytest.raises(ValueError, match="params"):
        ls.random_direction(jax.random.PRNGKey(0), {})


def test_matched_loss_epochs_picks_the_first_epoch_at_the_common_level():
    from softmax_stability.experiments.sf_landscapes import matched_loss_epochs

    target, ep = matched_loss_epochs({"FULL": [0.7, 0.6, 0.52], "TOPK(5)": [0.65, 0.5, 0.1, 0.05]})
    assert target == 0.52 and ep == {"FULL": 3, "TOPK(5)": 2}
    # the variant that trained least is taken at its end; a non-monotone curve at its first crossing
    target, ep = matched_loss_epochs({"A": [0.9, 0.4, 0.45, 0.3], "B": [0.8, 0.7, 0.6]})
    assert target == 0.6 and ep == {"A": 2, "B": 3}
    with pytest.raises(ValueError, match="train_loss"):
        matched_loss_epochs({"A": []})


def test_a_run_stopped_early_is_the_start_of_the_full_run(tmp_path):
    """What matched-loss landscapes rely on: training with epochs=e retraces the full run's first e epochs."""
    import dataclasses

    from softmax_stability.experiments import runner

    cfg = runner.profile_config("smoke", "even_pairs", "TOPK(5)", 0)
    full = runner.run(cfg, tmp_path, progress=False)
    E = len(full.history["train_loss"])
    assert E >= 2
    e = E // 2
    short = runner.run(dataclasses.replace(cfg, epochs=e), tmp_path, progress=False)
    for k in ("train_loss", "train_acc", "val_loss", "val_acc"):
        assert short.history[k] == full.history[k][:e], k
