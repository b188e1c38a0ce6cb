"""One script per figure or table; ``python -m figures`` regenerates them all into ``figures/out/``.

See :mod:`figures._common` for the framework and ``python -m figures --list`` for the names.
"""
