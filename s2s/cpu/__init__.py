"""Code that exists to make s2s fast on CPUs, kept in one place.

* :mod:`s2s.cpu.allocator` (standard library only): glibc heap settings and 2 MiB pages for
  loaded weights, used by training and, when asked, by the torch-free runtime.
* :mod:`s2s.cpu.functional` (torch): cheaper training-time formulations of tanh and dropout,
  and the attention dot products chosen per engine for accuracy.
* :mod:`s2s.cpu.steplinear` (torch): one weight-gradient product per step loop.

Importing this package imports nothing: the runtime may take the allocator without torch.
Their measured effects are recorded in ``exported/README.md`` and the recipes' README.
"""
