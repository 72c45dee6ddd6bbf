"""``python -m worker`` is ``sms-worker``."""

from worker.cli import main

raise SystemExit(main())
