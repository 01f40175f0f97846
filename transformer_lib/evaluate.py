"""``python -m transformer_lib.evaluate``: the same command as ``tlib-evaluate`` (see transformer_lib.cli.evaluate)."""

from transformer_lib.cli.evaluate import main

if __name__ == "__main__":
    main()
