"""Caucus domain: users, cases, spaces, live rooms and the store.

Sub-packages, each importing only those below it: ``spaces`` → ``cases`` → ``accounts`` →
``vault`` → ``storage``; ``errors`` is shared by all. Nothing here imports ``signaling``,
``sfu`` or ``recorder``.
"""

__version__ = "0.1.0"
