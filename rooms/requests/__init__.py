"""Case requests: the public request to a neutral and the conflict-of-interest check."""
