"""Learning experiments: the Semantic Focus (SF) tasks, model, training runner and loss landscapes,
and the SSA toy experiments.

Submodules (import them directly; nothing heavy is imported here):

* ``tasks`` -- the SF sequence tasks (NNCH re-generations, ListOps).
* ``variants`` -- attention variant names (FULL, TOPK(k), BAND(k)[:g], BLOC(k)[:g], BOTK(k), RND(k)).
* ``sf_model`` -- the SF encoder classifier as pure functions over a parameter pytree.
* ``training`` -- jitted SGD epochs (one dispatch per epoch) and evaluation.
* ``multiseed`` -- many seeds of one configuration as one jitted program (seeds vmapped, split
  across devices).
* ``runner`` -- cached, resumable runs over (task, variant, activation, seed), and the
  smoke/quick/medium/full run settings shared by the SF figures; ``run_seeds`` trains the seeds of
  one configuration together.
* ``ssa_toy`` -- the SSA toy experiments.

(Loss landscapes, ``sf_loss_landscape``/``sf_fig27`` of issue 5, are not written yet.)
"""
