"""The collector's web face: the API by role, the board's pages, login, and their guards.

Imports nothing heavy here: collector/config.py reads roles and token hashes
from this package, and an edge box's ``kienco token`` command uses them too.
"""
