"""``python -m whisperd.doctor``: the checks of ``whisperctl doctor``."""

import sys

from whisperd.doctor import run_doctor

sys.exit(run_doctor())
