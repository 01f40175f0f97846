"""python -m transformer_lib.data download --out DIR: the book's TinyStories extract."""

import sys

from .stories import main

sys.exit(main())
