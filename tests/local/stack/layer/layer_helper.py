"""Layer module for the test handlers: proves that a layer's ContentUri is on the import path."""

_imports = 0


def count_import() -> int:
    global _imports
    _imports += 1
    return _imports
