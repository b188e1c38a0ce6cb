"""Learning experiments: the Semantic Focus (SF) tasks, model, training runner and loss landscapes,
and the SSA toy experiments.

Submodules (import them directly; nothing heavy is imported here):

* ``tasks`` -- the SF sequence tasks (NNCH re-generations, ListOps).
* ``variants`` -- attention variant names (FULL, TOPK(k), BAND(k)[:g], BLOC(k)[:g], BOTK(k), RND(k)).
* ``sf_model`` -- the SF encoder classifier as pure functions over a parameter pytree.
* ``training`` -- jitted SGD epochs (one dispatch per epoch) and evaluation.
* ``runner`` -- cached, resumable runs over (task, variant, activation, seed), and the
  smoke/quick/full run settings shared by the SF figures.
* ``ssa_toy`` -- the SSA toy experiments (and the graph runs shared by ``ssa_fig3``/``ssa_table1``).
* ``focus_regions`` -- the SF region boundaries c2_min(c1), closed form against the authors' grid
  search (``sf_fig21``, ``sf_fig22``).
* ``dilution_sweeps`` -- dilution against n under temperature schedules and the needle phase maps
  (``dilution_vs_temperature``, ``dilution_phase_diagram``).
* ``sorted_attention`` -- sorted causal attention profiles of a random-weight layer
  (``ssa_sorted_attention``).

(Loss landscapes, ``sf_loss_landscape``/``sf_fig27`` of issue 5, are not written yet.)
"""
