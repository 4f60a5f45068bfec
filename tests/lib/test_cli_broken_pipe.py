"""`datadiet show ... | head`: a reader that closes the pipe early is not an error (it was reported as the network
error, exit 5, because BrokenPipeError is a ConnectionError)."""

from __future__ import annotations

import subprocess
import sys

from datadiet_hub.cli_errors import EXIT_BROKEN_PIPE


def test_a_closed_stdout_pipe_exits_quietly(score_folder):
    process = subprocess.Popen(
        [sys.executable, "-m", "datadiet_hub.cli", "show", str(score_folder), "--config", "cnn-ep2", "--top", "50"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdout.close()  # the reader is gone before the command prints (it is still importing)
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == EXIT_BROKEN_PIPE, stderr
    assert "error:" not in stderr and "Traceback" not in stderr, stderr
