"""``python -m transformer_lib.bench``: the same command as ``tlib-bench`` (see transformer_lib.cli.bench)."""

from transformer_lib.cli.bench import main

if __name__ == "__main__":
    main()
