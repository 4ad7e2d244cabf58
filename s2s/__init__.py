"""s2s: sequence-to-sequence toolkit. Importing the package loads nothing heavy."""

__version__ = "0.1.0"
