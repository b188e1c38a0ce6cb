r"""The sequence classification tasks of the Semantic Focus experiments.

Eight tasks, as used by Ram et al. 2025 (``docs/notes/semantic_focus.md`` §4):

* the seven NNCH tasks (Deletang et al. 2023, *Neural Networks and the Chomsky Hierarchy*) at length
  40, 5000 training and 2000 held-out samples per seed: ``parity``, ``even_pairs``,
  ``missing_duplicate``, ``cycle_navigation``, ``stack_manipulation``,
  ``modular_arithmetic_brackets``, ``solve_equation``;
* ``listops`` (Long Range Arena generator): maximum depth 10, at most 10 arguments per operator,
  lengths strictly between 500 and 600 tokens, 10 classes.

Every generator is a NumPy function of a seed: the same ``(task, seed, sizes)`` gives the same
arrays on every machine. Training and held-out sets come from independent streams of
``numpy.random.default_rng([seed, split, task])`` (ListOps draws both from one stream and
removes duplicates, as the LRA script does, so the two sets never share a sequence).

**Re-generations.** The SF authors ported Parity, Even Pairs and Missing Duplicate to PyTorch
(``datasets.py``) and loaded the other four NNCH tasks from pickles generated per seed with the
NNCH code. Those pickles are not available here: Cycle Navigation, Stack Manipulation, Modular
Arithmetic with Brackets and Solve Equation are *re-generated* from the NNCH task definitions
(``tasks/regular/cycle_navigation.py``, ``tasks/dcf/stack_manipulation.py``,
``tasks/dcf/modular_arithmetic_brackets.py``, ``tasks/dcf/solve_equation.py``), so they follow the
same distribution but are not the authors' samples. NNCH's Stack Manipulation outputs a whole
stack; the SF authors use it as a 3-class problem whose reduction is not documented. Here the
label is the first token of the NNCH output (the top of the final stack, or the termination
symbol 2 when the stack is empty) -- an **unconfirmed** guess [INF].

Token ids: the task's symbols are ``0 .. n_symbols-1``; ``n_symbols`` is PAD (used only when a
masked variant pads the sequence, or for ListOps' variable lengths); global tokens take the ids
after PAD (see :func:`prepare_inputs`).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from softmax_stability._checks import check_int_in_range
from softmax_stability.experiments.variants import Variant, padded_length, parse_variant

__all__ = ["TaskSpec", "TaskData", "TASKS", "task_names", "get_task", "generate", "load_task",
           "prepare_inputs", "LISTOPS_TOKENS", "listops_value"]


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """A task and the SF authors' settings for it (``train.md`` and the ``*.sh`` scripts)."""

    name: str
    n_symbols: int  # content token ids 0 .. n_symbols-1 ; PAD = n_symbols
    n_classes: int
    length: int  # fixed length (NNCH) or the upper length bound (ListOps, exclusive)
    epochs: int  # the authors' number of epochs
    lr: float  # initial SGD learning rate
    lr_decay: float  # StepLR factor per epoch
    blocks: int  # transformer blocks
    description: str
    regenerated: bool = False  # True: the authors used pickled data that are re-generated here

    @property
    def pad_id(self) -> int:
        return self.n_symbols


@dataclasses.dataclass(frozen=True)
class TaskData:
    """Generated training and held-out sets (``int32`` tokens, ``int32`` labels), unpadded."""

    spec: TaskSpec
    seed: int
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray

    @property
    def length(self) -> int:
        return int(self.x_train.shape[1])


# ----------------------------------------------------------------------------------------------
# NNCH generators: (rng, n, length) -> (tokens [n, length] int, labels [n] int)


def _parity(rng: np.random.Generator, n: int, length: int):
    x = rng.integers(0, 2, size=(n, length))
    return x, x.sum(axis=1) % 2


def _even_pairs(rng: np.random.Generator, n: int, length: int):
    # NNCH even_pairs / SF "ueqpairs": parity of the number of unequal adjacent pairs
    x = rng.integers(0, 2, size=(n, length))
    return x, np.logical_xor(x[:, :-1], x[:, 1:]).sum(axis=1) % 2


def _missing_duplicate(rng: np.random.Generator, n: int, length: int):
    # a string ww (|w| = length/2) with one position replaced by MISSING (= 2); label: the hidden bit
    half = length // 2
    w = rng.integers(0, 2, size=(n, half))
    x = np.concatenate([w, w], axis=1)
    pos = rng.integers(0, 2 * half, size=n)
    rows = np.arange(n)
    y = x[rows, pos].copy()
    x[rows, pos] = 2
    if 2 * half < length:  # odd length: the SF code leaves the last slot as PAD (= 3)
        x = np.concatenate([x, np.full((n, length - 2 * half), 3)], axis=1)
    return x, y


def _cycle_navigation(rng: np.random.Generator, n: int, length: int):
    # actions 0, 1, 2 mean -1, 0, +1 on a cycle of 5 states starting at 0; label: final state
    a = rng.integers(0, 3, size=(n, length))
    return a, (a - 1).sum(axis=1) % 5


def _stack_manipulation(rng: np.random.Generator, n: int, length: int):
    # NNCH: a stack of bits (bottom to top) then actions POP=2, PUSH 0=3, PUSH 1=4 (POP on empty
    # is ignored). Label [INF]: the top of the final stack, or 2 (termination) if it is empty.
    x = np.empty((n, length), dtype=np.int64)
    y = np.empty(n, dtype=np.int64)
    for i in range(n):
        if length == 1:
            x[i] = rng.integers(0, 2, size=1)
            y[i] = x[i, 0]
            continue
        m = int(rng.integers(1, length))
        stack = rng.integers(0, 2, size=m)
        actions = rng.integers(2, 5, size=length - m)
        cur = list(stack)
        for a in actions:
            if a == 2:
                if cur:
                    cur.pop()
            else:
                cur.append(int(a) - 3)
        x[i, :m], x[i, m:] = stack, actions
        y[i] = cur[-1] if cur else 2
    return x, y


_MAB_IDS = {"+": 5, "-": 6, "*": 7, "(": 8, ")": 9}  # NNCH alphabet_to_int with modulus 5


def _mab_expression(rng: np.random.Generator, length: int, modulus: int = 5) -> tuple[str, int]:
    """NNCH ``generate_one_expression_and_result`` (no multiplication): a bracketed +/- expression
    of exactly ``length`` characters and its value mod ``modulus``."""
    if length == 1:
        t = int(rng.integers(0, modulus))
        return str(t), t
    if length == 2:
        t = int(rng.integers(0, modulus))
        return f"-{t}", -t % modulus
    if length == 3:
        t = int(rng.integers(0, modulus))
        return f"({t})", t
    if length == 4:
        t = int(rng.integers(0, modulus))
        return f"(-{t})", -t % modulus
    left = int(rng.integers(1, length - 3))
    right = length - left - 3
    ls, lv = _mab_expression(rng, left, modulus)
    rs, rv = _mab_expression(rng, right, modulus)
    if int(rng.integers(0, 2)) == 0:
        return f"({ls}+{rs})", (lv + rv) % modulus
    return f"({ls}-{rs})", (lv - rv) % modulus


def _modular_arithmetic_brackets(rng: np.random.Generator, n: int, length: int):
    x = np.empty((n, length), dtype=np.int64)
    y = np.empty(n, dtype=np.int64)
    for i in range(n):
        s, v = _mab_expression(rng, length)
        x[i] = [int(c) if c.isdigit() else _MAB_IDS[c] for c in s]
        y[i] = v
    return x, y


_SOLEQ_IDS = {"+": 5, "-": 6, "(": 7, ")": 8, "x": 9, "=": 10}  # NNCH solve_equation alphabet


def _solve_equation(rng: np.random.Generator, n: int, length: int):
    # NNCH: an expression of length-2 characters with one digit replaced by x, then "=value";
    # label: the replaced digit
    if length < 3:
        raise ValueError(f"solve_equation needs length >= 3, got {length}")
    x = np.empty((n, length), dtype=np.int64)
    y = np.empty(n, dtype=np.int64)
    for i in range(n):
        expr, val = _mab_expression(rng, length - 2)
        idx = int(rng.integers(0, len(expr)))
        while not expr[idx].isdigit():
            idx = (idx + 1) % (length - 2)
        y[i] = int(expr[idx])
        s = f"{expr[:idx]}x{expr[idx + 1:]}={val}"
        x[i] = [int(c) if c.isdigit() else _SOLEQ_IDS[c] for c in s]
    return x, y


# ----------------------------------------------------------------------------------------------
# ListOps (Long Range Arena, lra_benchmarks/data/listops.py)

LISTOPS_TOKENS = {**{str(d): d for d in range(10)}, "[MIN": 10, "[MAX": 11, "[MED": 12, "[SM": 13, "]": 14}
_LISTOPS_VALUE_P = 0.25  # LRA VALUE_P: below max_depth a node is an operator with probability 0.25


class _TooLong(Exception):
    pass


def listops_value(op: int, args: list[int]) -> int:
    """Value of one ListOps operator (token id 10..13) on its argument values (LRA ``to_value``)."""
    if op == 10:
        return min(args)
    if op == 11:
        return max(args)
    if op == 12:
        return int(np.median(args))  # LRA: int(np.median(...)), truncating .5
    if op == 13:
        return int(sum(args) % 10)
    raise ValueError(f"not a ListOps operator id: {op}")


def _listops_tree(rng, depth, max_depth, max_args, out, budget):
    r = rng.random() if depth < max_depth else 1.0
    if r > _LISTOPS_VALUE_P:
        v = int(rng.integers(0, 10))
        out.append(v)
        if len(out) > budget:
            raise _TooLong
        return v
    n_args = int(rng.integers(2, max_args + 1))
    op = 10 + int(rng.integers(0, 4))
    out.append(op)
    vals = [_listops_tree(rng, depth + 1, max_depth, max_args, out, budget) for _ in range(n_args)]
    out.append(14)
    if len(out) > budget:
        raise _TooLong
    return listops_value(op, vals)


def _listops(rng: np.random.Generator, n: int, min_length: int, max_length: int,
             max_depth: int = 10, max_args: int = 10):
    """``n`` distinct ListOps sequences with ``min_length < len < max_length`` (LRA's strict bounds),
    right-padded with PAD (15) to the longest one."""
    seqs: list[tuple[int, ...]] = []
    vals: list[int] = []
    seen: set[tuple[int, ...]] = set()
    while len(seqs) < n:
        out: list[int] = []
        try:
            v = _listops_tree(rng, 1, max_depth, max_args, out, max_length - 1)
        except _TooLong:
            continue
        t = tuple(out)
        if min_length < len(t) < max_length and t not in seen:
            seen.add(t)
            seqs.append(t)
            vals.append(v)
    width = max(len(s) for s in seqs)
    x = np.full((n, width), 15, dtype=np.int64)
    for i, s in enumerate(seqs):
        x[i, :len(s)] = s
    return x, np.asarray(vals, dtype=np.int64)


# ----------------------------------------------------------------------------------------------
# registry

_NNCH_NOTE = "NNCH (Deletang et al. 2023) re-generation; the SF authors' pickled samples are not available"

TASKS: dict[str, TaskSpec] = {
    t.name: t for t in [
        TaskSpec("parity", 2, 2, 40, 1000, 0.1, 0.9995, 5, "sum of the bits mod 2"),
        TaskSpec("even_pairs", 2, 2, 40, 100, 0.1, 0.9995, 5,
                 "parity of the number of unequal adjacent pairs (= first XOR last bit)"),
        TaskSpec("missing_duplicate", 3, 2, 40, 250, 0.1, 0.9995, 5,
                 "ww with one bit replaced by MISSING; predict the hidden bit"),
        TaskSpec("cycle_navigation", 3, 5, 40, 750, 0.1, 0.9995, 5,
                 "moves -1/0/+1 on a 5-cycle from 0; predict the final state. " + _NNCH_NOTE, True),
        TaskSpec("stack_manipulation", 5, 3, 40, 200, 0.1, 0.9995, 5,
                 "bit stack then POP/PUSH 0/PUSH 1; predict the final top (2 = empty, unconfirmed "
                 "reduction). " + _NNCH_NOTE, True),
        TaskSpec("modular_arithmetic_brackets", 11, 5, 40, 600, 0.1, 0.9995, 5,
                 "value mod 5 of a bracketed +/- expression. " + _NNCH_NOTE, True),
        TaskSpec("solve_equation", 11, 5, 40, 600, 0.1, 0.9995, 5,
                 "solve for the digit x in 'expr(x)=v' mod 5. " + _NNCH_NOTE, True),
        TaskSpec("listops", 15, 10, 600, 200, 1.0, 0.99, 10,
                 "LRA ListOps (MIN, MAX, MED, SM), depth <= 10, <= 10 arguments, 500 < length < 600"),
    ]
}

_GENERATORS: dict[str, Callable] = {
    "parity": _parity,
    "even_pairs": _even_pairs,
    "missing_duplicate": _missing_duplicate,
    "cycle_navigation": _cycle_navigation,
    "stack_manipulation": _stack_manipulation,
    "modular_arithmetic_brackets": _modular_arithmetic_brackets,
    "solve_equation": _solve_equation,
}


def task_names() -> list[str]:
    """All task names."""
    return list(TASKS)


def get_task(name: str) -> TaskSpec:
    """The :class:`TaskSpec` of ``name``.

    Raises:
      ValueError: listing the valid names, for an unknown task.
    """
    if not isinstance(name, str) or name not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}")
    return TASKS[name]


def _rng(seed: int, split: int, task: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), split, list(TASKS).index(task)])


def generate(name: str, n: int, seed: int, *, split: str = "train", length: int | None = None,
             min_length: int | None = None, max_depth: int = 10,
             max_args: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """``n`` samples of task ``name`` from the stream ``(seed, split)``.

    Args:
      name: a task of :data:`TASKS`.
      n: number of samples, ``>= 1``.
      seed: a non-negative integer.
      split: ``"train"`` or ``"val"`` (independent streams). For ``listops`` use :func:`load_task`,
        which draws both splits from one stream without duplicates.
      length: sequence length (NNCH; default 40) or the exclusive upper length bound (ListOps;
        default 600).
      min_length: ListOps only: exclusive lower length bound (default 500).
      max_depth, max_args: ListOps only: tree depth and operator arity bounds (default 10, 10).

    Returns:
      ``(tokens, labels)``: ``int32`` arrays of shape ``[n, length]`` and ``[n]``.

    Example:
      >>> x, y = generate("even_pairs", 3, seed=0)
      >>> x.shape, bool(((x[:, 0] ^ x[:, -1]) == y).all())
      ((3, 40), True)
    """
    spec = get_task(name)
    n = check_int_in_range(n, "n", 1)
    seed = check_int_in_range(seed, "seed", 0)
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    length = spec.length if length is None else check_int_in_range(length, "length", 2)
    rng = _rng(seed, 0 if split == "train" else 1, name)
    if name == "listops":
        lo = 500 if min_length is None else check_int_in_range(min_length, "min_length", 0)
        if lo + 1 >= length:
            raise ValueError(f"listops needs min_length + 1 < length (exclusive bounds), got {lo}, {length}")
        x, y = _listops(rng, n, lo, length, check_int_in_range(max_depth, "max_depth", 2),
                        check_int_in_range(max_args, "max_args", 2))
    else:
        if name == "solve_equation" and length < 3:
            raise ValueError(f"solve_equation needs length >= 3, got {length}")
        x, y = _GENERATORS[name](rng, n, length)
    return x.astype(np.int32), y.astype(np.int32)


def load_task(name: str, seed: int, *, n_train: int = 5000, n_val: int = 2000, length: int | None = None,
              min_length: int | None = None, max_depth: int = 10, max_args: int = 10) -> TaskData:
    """Training and held-out sets of task ``name`` for ``seed`` (defaults: the SF sizes).

    ListOps: ``n_train + n_val`` distinct sequences from one stream, split in order, both padded
    with PAD to the longest sequence of the two sets (as the SF ``ListOpsDataset``).

    Example:
      >>> d = load_task("missing_duplicate", seed=1, n_train=10, n_val=5)
      >>> d.x_train.shape, d.x_val.shape, d.spec.n_classes
      ((10, 40), (5, 40), 2)
    """
    spec = get_task(name)
    n_train = check_int_in_range(n_train, "n_train", 1)
    n_val = check_int_in_range(n_val, "n_val", 1)
    if name == "listops":
        x, y = generate(name, n_train + n_val, seed, length=length, min_length=min_length,
                        max_depth=max_depth, max_args=max_args)
        return TaskData(spec, int(seed), x[:n_train], y[:n_train], x[n_train:], y[n_train:])
    xt, yt = generate(name, n_train, seed, split="train", length=length)
    xv, yv = generate(name, n_val, seed, split="val", length=length)
    return TaskData(spec, int(seed), xt, yt, xv, yv)


def prepare_inputs(x: np.ndarray, spec: TaskSpec, variant: Variant | str) -> np.ndarray:
    """Pad ``x`` for ``variant`` as the SF data pipeline does: PAD up to a multiple of ``k`` (masked
    variants), then ``g`` global tokens with ids ``pad_id + 1 .. pad_id + g``.

    The embedding table therefore needs ``spec.n_symbols + 1 + g`` rows.

    Raises:
      ValueError: if the variant's ``k`` exceeds the sequence length.

    Example:
      >>> import numpy as np
      >>> spec = get_task("parity")
      >>> prepare_inputs(np.zeros((1, 4), np.int32), spec, "BLOC(3):2").tolist()
      [[0, 0, 0, 0, 2, 2, 3, 4]]
    """
    v = parse_variant(variant)
    x = np.asarray(x)
    n = x.shape[1]
    total = padded_length(n, v)
    core = total - v.global_tokens
    out = np.full((x.shape[0], total), spec.pad_id, dtype=np.int32)
    out[:, :n] = x
    for i in range(v.global_tokens):
        out[:, core + i] = spec.pad_id + 1 + i
    return out
