"""tfft's version (a module of its own, so parts of the package need not import the package root)."""

__version__ = "0.1.0"
