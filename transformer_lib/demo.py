"""``python -m transformer_lib.demo``: the ``tlib-demo`` command (transformer_lib.cli.demo)."""

import sys

from transformer_lib.cli.demo import main

if __name__ == "__main__":
    sys.exit(main())  # the command's exit status, not 0 whatever happened
