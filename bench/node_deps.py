"""The Node side of the benchmarks (load generators, the Socket.IO peer), installed on
first use from the committed bench/package-lock.json, so that every benchmark runs on a
fresh clone with one command."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
PACKAGES = ("ws", "socket.io", "socket.io-client")  # bench/package.json's dependencies


def ensure_node_deps() -> str:
    """Install bench/node_modules when any package is missing; the `node` to run."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        raise SystemExit("node and npm not found: install Node.js 18+ to run the benchmarks")
    if all((BENCH / "node_modules" / name / "package.json").is_file() for name in PACKAGES):
        return node
    cmd = [npm, "ci", "--prefix", str(BENCH), "--no-audit", "--no-fund"]
    print(f"installing the benchmarks' node dependencies: {' '.join(cmd)}", file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, timeout=300, cwd=BENCH)
    return node
