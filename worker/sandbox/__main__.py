"""``python -m worker.sandbox --port 0 ...``: see :mod:`worker.sandbox.cli`."""

import sys

from worker.sandbox.cli import main

if __name__ == "__main__":
    sys.exit(main())
