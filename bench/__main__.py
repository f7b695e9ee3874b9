"""``python -m bench``: see bench/suite.py and docs/benchmarks.md."""

import os
import sys

# The same numpy BLAS setting as the daemon (whisperd.server.limit_blas_threads), so the
# in-process baseline is not handicapped by it; the lever itself is measured apart
# (section 1, "numpy BLAS threads").
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

from bench.suite import main  # noqa: E402 - after the environment is set

sys.exit(main())
