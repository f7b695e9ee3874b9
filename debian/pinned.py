"""Print `name==version` for every name in NAMES, with the version pinned in CONSTRAINTS.

    python3 debian/pinned.py debian/venv-packages.txt constraints.txt > requirements

Exits 1, naming them, when a name has no pin: the .deb must never get an unpinned package.
"""

import re
import sys
from pathlib import Path


def canonical(name: str) -> str:
    """PEP 503 normalisation: PyYAML, pyyaml and py_yaml are one project."""
    return re.sub(r"[-_.]+", "-", name).lower()


def entries(path: str) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in Path(path).read_text().splitlines())
    return [line for line in lines if line]


names, constraints = sys.argv[1], sys.argv[2]
pins = {}
for line in entries(constraints):
    name, sep, version = line.partition("==")
    if sep:
        pins[canonical(name.strip())] = f"{name.strip()}=={version.strip()}"
missing = [name for name in entries(names) if canonical(name) not in pins]
if missing:
    sys.exit(f"pinned.py: no pin in {constraints} for: {', '.join(missing)}")
print("\n".join(pins[canonical(name)] for name in entries(names)))
