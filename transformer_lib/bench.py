"""``python -m transformer_lib.bench``: the ``tlib-bench`` command (transformer_lib.cli.bench)."""

import sys

from transformer_lib.cli.bench import main

if __name__ == "__main__":
    sys.exit(main())  # the command's exit status, not 0 whatever happened
