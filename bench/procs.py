"""What the benchmarks ask of the machine: a free local port for a process they start,
and the CPU time a process has used (from /proc, Linux)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ensure_venv(script: str) -> None:
    """Run `script` inside the repo's venv, making it (`make install`) first if it is
    missing: a benchmark is one command from a fresh clone. Call before importing anything
    the venv provides."""
    root = Path(__file__).resolve().parent.parent
    venv_python = root / ".venv" / "bin" / "python"
    if Path(sys.prefix).resolve() == (root / ".venv").resolve():
        return
    if not venv_python.exists():
        subprocess.run(["make", "install"], cwd=root, check=True)
    os.execv(str(venv_python), [str(venv_python), str(Path(script).resolve()), *sys.argv[1:]])
