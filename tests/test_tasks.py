"""Tests of softmax_stability.experiments.tasks: every label is re-derived by an evaluator written
here from the task's definition (plain Python: counting, state/stack simulation, expression and
ListOps parsing), never by the generator's own code."""

from __future__ import annotations

import numpy as np
import pytest

from softmax_stability.experiments import tasks

NNCH = ["parity", "even_pairs", "missing_duplicate", "cycle_navigation", "stack_manipulation",
        "modular_arithmetic_brackets", "solve_equation"]


# ------------------------------------------------------------------------------------------------
# independent evaluators (one sequence at a time, plain Python)

def eval_parity(s):
    return sum(s) % 2


def eval_even_pairs(s):
    return sum(1 for a, b in zip(s, s[1:]) if a != b) % 2


def eval_missing_duplicate(s):
    half = len(s) // 2
    (pos,) = [i for i, t in enumerate(s) if t == 2]
    other = pos + half if pos < half else pos - half
    return s[other]


def eval_cycle_navigation(s):
    state = 0
    for t in s:
        state = (state + {0: -1, 1: 0, 2: 1}[t]) % 5
    return state


def eval_stack_manipulation(s):
    # a bit-stack prefix (tokens 0/1, bottom first) then actions POP=2, PUSH0=3, PUSH1=4
    m = next(i for i, t in enumerate(s) if t >= 2)
    stack = list(s[:m])
    for t in s[m:]:
        assert t in (2, 3, 4), "a bit token after the first action"
        if t == 2:
            if stack:
                stack.pop()
        else:
            stack.append(t - 3)
    return stack[-1] if stack else 2


class _Expr:
    """Recursive-descent evaluator for the +/- bracket grammar (unary minus on a digit)."""

    def __init__(self, text, x=None):
        self.t, self.i, self.x = text, 0, x

    def parse(self):
        v = self.term()
        assert self.i == len(self.t), f"trailing input in {self.t!r}"
        return v

    def term(self):
        c = self.t[self.i]
        if c == "(":
            self.i += 1
            v = self.term()
            while self.t[self.i] in "+-":
                op = self.t[self.i]
                self.i += 1
                w = self.term()
                v = v + w if op == "+" else v - w
            assert self.t[self.i] == ")"
            self.i += 1
            return v
        if c == "-":
            self.i += 1
            return -self.term()
        self.i += 1
        if c == "x":
            return self.x
        assert c.isdigit()
        return int(c)


MAB_CHARS = {5: "+", 6: "-", 7: "*", 8: "(", 9: ")"}
SOLEQ_CHARS = {5: "+", 6: "-", 7: "(", 8: ")", 9: "x", 10: "="}


def decode(s, table):
    return "".join(str(t) if t < 5 else table[t] for t in s)


def eval_mab(s):
    return _Expr(decode(s, MAB_CHARS)).parse() % 5


def eval_solve_equation(s):
    text = decode(s, SOLEQ_CHARS)
    lhs, rhs = text.split("=")
    assert text.count("x") == 1 and rhs.isdigit()
    sols = [d for d in range(5) if _Expr(lhs, d).parse() % 5 == int(rhs) % 5]
    assert len(sols) == 1, f"{text!r} has solutions {sols}"
    return sols[0]


EVALUATORS = {"parity": eval_parity, "even_pairs": eval_even_pairs,
              "missing_duplicate": eval_missing_duplicate, "cycle_navigation": eval_cycle_navigation,
              "stack_manipulation": eval_stack_manipulation, "modular_arithmetic_brackets": eval_mab,
              "solve_equation": eval_solve_equation}


def listops_eval(seq):
    """Value, depth and max arity of a ListOps token sequence (ids: digits, 10..13 ops, 14 ']')."""
    pos = 0

    def node(depth):
        nonlocal pos
        t = seq[pos]
        pos += 1
        if t < 10:
            return t, depth, 0
        assert 10 <= t <= 13, f"unexpected token {t}"
        vals, dmax, amax = [], depth, 0
        while seq[pos] != 14:
            v, d, a = node(depth + 1)
            vals.append(v)
            dmax, amax = max(dmax, d), max(amax, a)
        pos += 1
        srt = sorted(vals)
        m = len(srt)
        med = srt[m // 2] if m % 2 else (srt[m // 2 - 1] + srt[m // 2]) // 2
        val = {10: min(vals), 11: max(vals), 12: med, 13: sum(vals) % 10}[t]
        return val, dmax, max(amax, len(vals))

    v, d, a = node(1)
    assert pos == len(seq), "tokens after the root expression"
    return v, d, a


# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def nnch_data():
    return {t: tasks.load_task(t, seed=3) for t in NNCH}


@pytest.mark.parametrize("name", NNCH)
def test_nnch_sizes_lengths_and_labels(name, nnch_data):
    d = nnch_data[name]
    spec = tasks.get_task(name)
    assert d.x_train.shape == (5000, 40) and d.x_val.shape == (2000, 40)
    assert d.y_train.shape == (5000,) and d.y_val.shape == (2000,)
    assert d.x_train.dtype == np.int32 and d.y_train.dtype == np.int32
    for x, y in ((d.x_train, d.y_train), (d.x_val, d.y_val)):
        assert x.min() >= 0 and x.max() < spec.n_symbols  # no PAD in fixed-length NNCH data
        assert y.min() >= 0 and y.max() < spec.n_classes
        ev = EVALUATORS[name]
        want = np.array([ev(row.tolist()) for row in x])
        np.testing.assert_array_equal(y, want)
    # not degenerate: at least two classes, and train/val are different draws
    assert len(np.unique(d.y_train)) >= 2
    assert not np.array_equal(d.x_train[:2000], d.x_val)


def test_missing_duplicate_is_ww_with_one_missing(nnch_data):
    x = nnch_data["missing_duplicate"].x_train
    assert np.all((x == 2).sum(axis=1) == 1)
    a, b = x[:, :20], x[:, 20:]
    ok = (a == b) | (a == 2) | (b == 2)
    assert ok.all()


@pytest.mark.parametrize("name", NNCH)
def test_deterministic_per_seed(name):
    x1, y1 = tasks.generate(name, 50, seed=11)
    x2, y2 = tasks.generate(name, 50, seed=11)
    x3, _ = tasks.generate(name, 50, seed=12)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(x1, x3)


def test_labels_balanced_binary_tasks(nnch_data):
    # parity-type labels of uniform bits are fair coins: 5000 draws stay within 5 sigma of 1/2
    for name in ("parity", "even_pairs", "missing_duplicate"):
        frac = nnch_data[name].y_train.mean()
        assert abs(frac - 0.5) < 5 * 0.5 / np.sqrt(5000), (name, frac)


def test_other_lengths():
    for name in NNCH:
        x, y = tasks.generate(name, 20, seed=0, length=17)
        assert x.shape == (20, 17)
        if name != "missing_duplicate":  # odd length: the last slot is PAD there
            np.testing.assert_array_equal(y, [EVALUATORS[name](r.tolist()) for r in x])


def test_listops_default_lengths_depth_arity_and_labels():
    d = tasks.load_task("listops", seed=0, n_train=6, n_val=3)
    assert d.spec.n_classes == 10
    seqs = []
    for x, y in ((d.x_train, d.y_train), (d.x_val, d.y_val)):
        for row, lab in zip(x, y):
            toks = [int(t) for t in row if t != 15]  # strip PAD
            assert list(row[len(toks):]) == [15] * (len(row) - len(toks)), "PAD only at the end"
            assert 500 < len(toks) < 600
            v, depth, arity = listops_eval(toks)
            assert v == lab and depth <= 10 and arity <= 10
            seqs.append(tuple(toks))
    assert len(set(seqs)) == len(seqs)  # train and val share no sequence
    d2 = tasks.load_task("listops", seed=0, n_train=6, n_val=3)
    np.testing.assert_array_equal(d.x_train, d2.x_train)
    np.testing.assert_array_equal(d.y_val, d2.y_val)


def test_listops_short_many():
    # shorter sequences make many samples cheap: labels over all four operators
    x, y = tasks.generate("listops", 300, seed=5, length=60, min_length=20, max_depth=4, max_args=5)
    ops = set()
    for row, lab in zip(x, y):
        toks = [int(t) for t in row if t != 15]
        assert 20 < len(toks) < 60
        v, depth, arity = listops_eval(toks)
        assert v == lab and depth <= 4 and 2 <= arity <= 5
        ops |= {t for t in toks if 10 <= t <= 13}
    assert ops == {10, 11, 12, 13}
    assert len(np.unique(y)) >= 5


def test_unknown_task_lists_valid_names():
    with pytest.raises(ValueError) as err:
        tasks.get_task("evenpairs")
    for name in tasks.task_names():
        assert name in str(err.value)
    with pytest.raises(ValueError, match="valid tasks"):
        tasks.load_task("nope", seed=0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n=0), "n"), (dict(seed=-1), "seed"), (dict(split="test"), "split"), (dict(length=1), "length"),
])
def test_generate_bad_arguments(kwargs, match):
    args = dict(name="parity", n=3, seed=0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        tasks.generate(**args)


def test_prepare_inputs_padding_and_k_too_large():
    spec = tasks.get_task("even_pairs")
    x = np.ones((2, 7), np.int32)
    out = tasks.prepare_inputs(x, spec, "BAND(5):1")
    # 7 rounded up to 10 (multiple of k), then one global token with id pad+1
    assert out.shape == (2, 11)
    assert (out[:, 7:10] == spec.pad_id).all() and (out[:, 10] == spec.pad_id + 1).all()
    np.testing.assert_array_equal(tasks.prepare_inputs(x, spec, "FULL"), x)
    with pytest.raises(ValueError, match="larger than the sequence"):
        tasks.prepare_inputs(x, spec, "TOPK(8)")
