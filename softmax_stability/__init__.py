"""softmax-stability: softmax Jacobian norms, attention Lipschitz bounds and sparsity-dependent
stability constants in JAX, each checked against autodiff measurements and symbolic derivations.

Modules (one concern each): ``maps``, ``masks``, ``jacobian``, ``focus``, ``dilution``,
``temperature``, ``attention``, ``empirical``, ``claims``, ``experiments``, ``cli``.
"""

__version__ = "0.1.0"
