"""Learning experiments: the Semantic Focus (SF) tasks, model, training runner and loss landscapes,
and the SSA toy experiments.

Submodules (import them directly; nothing heavy is imported here):

* ``tasks`` -- the SF sequence tasks (NNCH re-generations, ListOps).
* ``variants`` -- attention variant names (FULL, TOPK(k), BAND(k)[:g], BLOC(k)[:g], BOTK(k), RND(k)).
* ``sf_model`` -- the SF encoder classifier as pure functions over a parameter pytree.
* ``training`` -- jitted SGD epochs (one dispatch per epoch) and evaluation.
* ``runner`` -- cached, resumable runs over (task, variant, activation, seed), and the
  smoke/quick/full run settings shared by the SF figures.
* ``ssa_toy`` -- the SSA toy experiments.
* ``retrieval_tasks`` -- passkey retrieval and multi-query associative recall generators.
* ``ssa_decoder`` -- a small causal decoder with nine attention variants (SSA, SSMax, sparse maps).
* ``ssa_retrieval`` -- cached, resumable trained-model runs of issue 17: accuracy against test
  length and dilution measured inside the models against the closed form.

(Loss landscapes, ``sf_loss_landscape``/``sf_fig27`` of issue 5, are not written yet.)
"""
