"""The command lines, one module each: ``tlib-NAME`` or ``python -m transformer_lib.cli.NAME``.

demo, train, evaluate, generate, bench, data (the book's extract) and tokenizer. Nothing in the
library imports these modules; they sit on top of every other layer.
"""
