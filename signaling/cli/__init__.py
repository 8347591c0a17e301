"""The ``caucus`` command (``main``; also ``python -m signaling.cli``) and its parts:
``keys`` (master-key rotation), ``worker`` (one media worker process), ``loadtest`` (the
load client's command, loaded only when run), and the process set-up every entry point
shares (``logconfig``, ``heap``)."""
