"""``python -m perturbsim``: the ``perturbsim`` command, where its entry point is not on PATH."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
