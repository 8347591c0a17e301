"""Spaces of a case: spaces, their members, messages, files and filed recordings, the file
type checks, and ``facade.Spaces`` that puts them together."""
