"""The suite's fixtures live in ``tests/support/plugin.py`` (a store, the app served over
HTTPS, API clients, the signed-in world)."""

pytest_plugins = ["tests.support.plugin"]
