"""``python -m bench``: see bench/suite.py and docs/benchmarks.md."""

import os
import sys

# The same OpenBLAS setting as the daemon (whisperd.server.stop_blas_spinning), so the
# in-process baseline is not handicapped by spinning BLAS threads; the lever itself is
# measured apart (section 1, "OpenBLAS spinning").
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
# In-process faster-whisper (the baselines) loads onnxruntime: its telemetry off first,
# as the daemon does.
from whisperd.privacy import keep_local  # noqa: E402

keep_local()

from bench.suite import main  # noqa: E402 - after the environment is set

sys.exit(main())
