"""Caucus domain: users, cases, spaces, live rooms and the store."""

__version__ = "0.1.0"
