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
* ``ssa_toy`` -- the SSA toy experiments (and the graph runs shared by ``ssa_fig3``/``ssa_table1``).
* ``focus_regions`` -- the SF region boundaries c2_min(c1), closed form against the authors' grid
  search (``sf_fig21``, ``sf_fig22``).
* ``dilution_sweeps`` -- dilution against n under temperature schedules and the needle phase maps
  (``dilution_vs_temperature``, ``dilution_phase_diagram``).
* ``sorted_attention`` -- sorted causal attention profiles of a random-weight layer
  (``ssa_sorted_attention``).
* ``stability`` -- measured against predicted stability of top-k attention (SF conditions (304)/(305)).
* ``sf_results`` -- the SF runs of a profile, collected, and their Fig. 1 summaries.
* ``landscape``, ``sf_landscapes`` -- loss landscapes along filter-normalised random directions, and
  the trained FULL/TOPK(5) models' surfaces at matched training loss.
* ``retrieval_tasks`` -- passkey retrieval and multi-query associative recall generators.
* ``ssa_decoder`` -- a small causal decoder with nine attention variants (SSA, SSMax, sparse maps).
* ``ssa_retrieval`` -- cached, resumable trained-model runs: accuracy against test length, and
  dilution measured inside the models against the closed form.
"""
