"""``python -m transformer_lib.evaluate``: the same command as ``tlib-evaluate`` (see transformer_lib.cli.evaluate)."""

import sys

from transformer_lib.cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())  # the command's exit status, not 0 whatever happened
