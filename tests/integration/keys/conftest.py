import sys
from pathlib import Path

# The PulseAudio harness next to these tests is imported by name.
sys.path.insert(0, str(Path(__file__).parent))
