"""A sandbox for HumanEval: run generated code in a separate, limited Python process.

The child is `python -I` in an empty temporary directory with a minimal environment. Before
the program runs, a guard sets resource limits (CPU seconds, address space, file size, open
files), makes every socket constructor raise (no network), and removes process-spawning and
destructive `os`/`subprocess`/`shutil` functions. The parent kills the child's whole process
group at the wall-clock timeout. This is defence in depth for scoring a model's output, not a
security boundary for hostile code: run untrusted evaluations in a container as well.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass

_GUARD = r"""
import resource, sys
def _limit(kind, value):
    try:
        resource.setrlimit(kind, (value, value))
    except (ValueError, OSError):
        pass
_limit(resource.RLIMIT_CPU, {cpu_s})
_limit(resource.RLIMIT_AS, {memory_bytes})
_limit(resource.RLIMIT_FSIZE, 1 << 20)
_limit(resource.RLIMIT_NOFILE, 64)
import socket, _socket
class _NoNetwork:
    def __init__(self, *args, **kwargs):
        raise PermissionError("network access is disabled in the sandbox")
for _mod in (socket, _socket):
    for _name in ("socket", "socketpair", "create_connection", "create_server", "fromfd"):
        if hasattr(_mod, _name):
            setattr(_mod, _name, _NoNetwork)
import os, shutil, subprocess
for _name in ("system", "popen", "fork", "forkpty", "kill", "killpg", "execv", "execve",
              "execvp", "execvpe", "spawnv", "spawnve", "posix_spawn", "posix_spawnp",
              "remove", "unlink", "rmdir", "removedirs", "rename", "renames", "truncate",
              "chmod", "chown", "setuid", "putenv", "unsetenv"):
    if hasattr(os, _name):
        setattr(os, _name, None)
subprocess.Popen = None
shutil.rmtree = shutil.move = None
del _limit, _mod, _name, _NoNetwork
_program = sys.stdin.read()
exec(compile(_program, "<generated>", "exec"), {{"__name__": "__main__"}})
"""


@dataclass(frozen=True)
class SandboxResult:
    passed: bool
    reason: str  # "passed", "timed out after Ns", or the tail of stderr


def run_program(
    program: str, timeout_s: float = 10.0, memory_bytes: int = 1 << 30
) -> SandboxResult:
    """Run `program` in a guarded child process; passed means exit status 0 within time."""
    guard = _GUARD.format(cpu_s=max(1, int(timeout_s) + 1), memory_bytes=memory_bytes)
    env = {"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
    with tempfile.TemporaryDirectory(prefix="lora_land_sandbox_") as cwd:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-c", guard],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=env,
            start_new_session=True,
            text=True,
        )
        try:
            _, err = proc.communicate(program, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return SandboxResult(False, f"timed out after {timeout_s:g}s")
    if proc.returncode == 0:
        return SandboxResult(True, "passed")
    return SandboxResult(False, (err or f"exit status {proc.returncode}").strip()[-500:])


_FENCE = re.compile(r"```(?:python|py|Python)?\s*\n(.*?)(?:```|$)", re.DOTALL)


def extract_code(generation: str) -> str:
    """The first fenced code block if there is one, else the text as is."""
    m = _FENCE.search(generation)
    return m.group(1) if m else generation


def humaneval_program(generation: str, row: Mapping[str, str]) -> str:
    """Prompt + completion (or the generated function alone), then the tests and `check`."""
    code = extract_code(generation)
    entry = row["entry_point"]
    if re.search(rf"^\s*def\s+{re.escape(entry)}\s*\(", code, re.MULTILINE):
        imports = "\n".join(
            line
            for line in row.get("prompt", "").splitlines()
            if line.startswith(("import ", "from "))
        )
        body = f"{imports}\n{code}"
    else:
        body = row.get("prompt", "") + code
    return f"{body}\n\n{row['test']}\n\ncheck({entry})\n"


def check_humaneval(
    generation: str, row: Mapping[str, str], timeout_s: float = 10.0
) -> SandboxResult:
    return run_program(humaneval_program(generation, row), timeout_s=timeout_s)
