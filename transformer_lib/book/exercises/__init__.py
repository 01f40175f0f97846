"""The checks behind the book's exercises: one module per chapter, one function per exercise.

The chapters call these instead of comparing with an expected value in the notebook, so a
chapter never shows the answer; ``notebooks/solutions/`` holds the answers.
"""
