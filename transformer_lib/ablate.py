"""``python -m transformer_lib.ablate``: the ablation command (see transformer_lib.cli.ablate)."""

import sys

from transformer_lib.cli.ablate import main

if __name__ == "__main__":
    sys.exit(main())  # the command's exit status, not 0 whatever happened
