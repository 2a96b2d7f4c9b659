"""One module per backend, each with the same functions: ``loss_grad``, ``gd_step``, ``penalty``.

``numpy`` is the reference (its docstring states the contract); ``numba`` and ``cython``
are parallel CPU kernels; ``cuda`` runs on NVIDIA GPUs through Numba-CUDA. Select one
through :mod:`fastgd._registry`, never by importing it directly in library code.
"""
