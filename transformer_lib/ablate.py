"""``python -m transformer_lib.ablate``: the ablation command (see transformer_lib.cli.ablate)."""

from transformer_lib.cli.ablate import main

if __name__ == "__main__":
    main()
