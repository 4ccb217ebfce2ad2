"""`python -m batch` entry point."""

import sys

from batch.cli import main

sys.exit(main())
