"""``python -m figures [NAME ...] [--profile P] [--out DIR] [--seed S] [--list]``, ``python -m figures run``
and ``python -m figures report``: see :mod:`figures._cli`."""

import sys

from figures._cli import main

if __name__ == "__main__":
    sys.exit(main())
