"""``python -m bench``: see bench/suite.py and docs/benchmarks.md."""

import sys

from bench.suite import main

sys.exit(main())
