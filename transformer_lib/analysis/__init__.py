"""Reading a model: interpretability probes (interpret) and the numbers behind the book's
figures (compute). Pure computations on a model and tensors; nothing here draws."""
