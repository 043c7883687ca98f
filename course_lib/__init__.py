"""course_lib: every method of the course "How neural networks are optimized", in PyTorch.

Each submodule holds one idea and imports alone, e.g. ``from course_lib.optim import Adam``.
"""

__version__ = "0.1.0"
