"""``python -m transformer_lib.train``: the same command as ``tlib-train`` (see transformer_lib.cli.train)."""

from transformer_lib.cli.train import main

if __name__ == "__main__":
    main()
