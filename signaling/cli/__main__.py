"""``python -m signaling.cli``: the ``caucus`` command."""

import sys

from signaling.cli.main import main

sys.exit(main())
