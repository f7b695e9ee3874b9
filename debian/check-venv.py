"""Check that the private venv's Python packages have every dependency they declare.

`pip check` cannot be used: it also judges the build machine's unrelated Debian packages.
Here only distributions installed in the venv are judged; a dependency may be satisfied by
the venv or by Debian's dist-packages (python3-systemd, python3-evdev).
"""

import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

site = Path(sys.argv[1]).resolve()
extras = {"whisperd": {"model", "keys", "serve"}}
problems = []
for dist in metadata.distributions(path=[str(site)]):
    name = dist.metadata["Name"]
    for spec in dist.requires or []:
        req = Requirement(spec)
        wanted = extras.get(name.lower(), set())
        if req.marker and not any(req.marker.evaluate({"extra": e}) for e in wanted | {""}):
            continue
        try:
            have = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name} needs {req}: not installed")
            continue
        if req.specifier and not req.specifier.contains(have, prereleases=True):
            problems.append(f"{name} needs {req}: have {have}")
for p in problems:
    print("check-venv:", p, file=sys.stderr)
sys.exit(1 if problems else 0)
