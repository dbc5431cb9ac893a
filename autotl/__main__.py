"""``python -m autotl`` works like the ``autotl`` command."""

from autotl.cli import main

raise SystemExit(main())
