"""Run `python -m hub ...` under cProfile and write the stats when it stops.

    python bench/hub_profiled.py OUT.prof -m hub serve --host ... --port ...

uvicorn captures SIGTERM while it serves and raises it again once it has drained; the
handler installed here is the one it restores, so the stats are written on that signal.
`bench/ingest.py --profile OUT.prof` starts the hub this way.
"""

from __future__ import annotations

import cProfile
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    out = sys.argv[1]
    profile = cProfile.Profile()

    def dump(*_: object) -> None:
        profile.disable()
        profile.dump_stats(out)
        os._exit(0)

    signal.signal(signal.SIGTERM, dump)
    signal.signal(signal.SIGINT, dump)
    sys.argv = ["hub", *sys.argv[4:]]  # drop "OUT.prof -m hub"
    from hub.__main__ import main as hub_main

    profile.enable()
    hub_main()
    dump()


if __name__ == "__main__":
    main()
