"""What only CPython's cyclic garbage collector could free, made inside a block."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from types import FunctionType


def _name(thing: object) -> str:
    if isinstance(thing, FunctionType):
        return f"{thing.__module__}.{thing.__qualname__}"
    return f"{type(thing).__module__}.{type(thing).__qualname__}"


@contextmanager
def cyclic_garbage(*modules: str) -> Iterator[list[str]]:
    """The names (module.qualname; a function by its own) of the objects in reference
    cycles that became garbage inside the block, those of ``modules`` only: the test
    session's other threads may make garbage of their own. The collector is off inside."""
    found: list[str] = []
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield found
        gc.collect()
        found += [n for n in map(_name, gc.garbage) if n.startswith(modules)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
        gc.collect()
