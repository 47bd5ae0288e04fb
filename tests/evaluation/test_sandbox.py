"""The HumanEval sandbox: correct code passes; hangs, network and spawning fail."""

from __future__ import annotations

from lora_land.evaluation.metrics import score
from lora_land.evaluation.sandbox import check_humaneval, extract_code, run_program

ROW = {
    "prompt": 'def add(a: int, b: int) -> int:\n    """Add two numbers."""\n',
    "test": (
        "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"
    ),
    "entry_point": "add",
}


def test_correct_completion_passes() -> None:
    assert check_humaneval("    return a + b\n", ROW).passed
    assert score("humaneval", "    return a + b\n", "", ROW) == 1.0


def test_whole_function_in_a_fence_passes() -> None:
    generation = "Here you go:\n```python\ndef add(a, b):\n    return a + b\n```\nDone."
    assert extract_code(generation).startswith("def add")
    assert score("humaneval", generation, "", ROW) == 1.0


def test_wrong_completion_fails() -> None:
    result = check_humaneval("    return a - b\n", ROW)
    assert not result.passed
    assert "AssertionError" in result.reason


def test_infinite_loop_times_out_and_fails() -> None:
    result = check_humaneval("    while True:\n        pass\n", ROW, timeout_s=2)
    assert not result.passed
    assert result.reason.startswith("timed out")


def test_network_is_refused() -> None:
    program = "import socket\nsocket.create_connection(('127.0.0.1', 9))\n"
    result = run_program(program, timeout_s=5)
    assert not result.passed
    assert "network access is disabled" in result.reason
    raw = "import _socket\n_socket.socket()\n"
    assert not run_program(raw, timeout_s=5).passed


def test_spawning_processes_is_refused() -> None:
    assert not run_program("import os\nos.system('true')\n", timeout_s=5).passed
    assert not run_program("import subprocess\nsubprocess.run(['true'])\n", timeout_s=5).passed


def test_memory_is_limited() -> None:
    result = run_program("x = bytearray(4 << 30)\n", timeout_s=5, memory_bytes=512 << 20)
    assert not result.passed
    assert "MemoryError" in result.reason
