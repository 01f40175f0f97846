"""``python -m transformer_lib.demo``: the same command as ``tlib-demo`` (see transformer_lib.cli.demo)."""

from transformer_lib.cli.demo import main

if __name__ == "__main__":
    main()
