"""``python -m transformer_lib.train``: the ``tlib-train`` command (transformer_lib.cli.train)."""

import sys

from transformer_lib.cli.train import main

if __name__ == "__main__":
    sys.exit(main())  # the command's exit status, not 0 whatever happened
