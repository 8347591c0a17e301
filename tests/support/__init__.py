"""What the test suite shares: one server launcher, one ``eventually()``, the world
fixtures (a pytest plugin) and the databases they run on."""
