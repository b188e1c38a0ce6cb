"""Use this library inside Flax (NNX, Linen) and Equinox models.

* :mod:`softmax_stability.frameworks.flax` -- ``attention_fn`` modules for
  ``flax.nnx.MultiHeadAttention`` and Linen's ``nn.MultiHeadDotProductAttention``;
* :mod:`softmax_stability.frameworks.equinox` -- a drop-in for ``eqx.nn.MultiheadAttention``;
* :mod:`softmax_stability.frameworks.probe` -- per-layer, per-head statistics (SF Table 6, Jacobian
  spectral norms, dilution) of such a model, in one forward pass or along training.

Importing this package imports neither Flax nor Equinox (they are the optional extras ``flax`` and
``equinox``); only its submodules ``flax`` and ``equinox`` do. :class:`SSA` describes the Selective
Self-Attention temperatures a layer learns.
"""

from softmax_stability.frameworks._core import SSA

__all__ = ["SSA"]
