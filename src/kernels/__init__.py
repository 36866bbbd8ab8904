"""Fused preprocessing kernels (Triton), imported as ``vqametric.kernels``.

Each kernel's meaning is defined by the plain-PyTorch reference in
:mod:`vqametric.sampling.reference`.
"""
