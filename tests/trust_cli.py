"""Helpers for the trust tests (issue 13): run the real ``datadiet`` CLI in a fresh process and check that a bad
input or a fault ends in exactly one ``error:`` line, a documented exit code and no traceback.

Exit codes (README "CLI" section, ``datadiet --help``): 2 bad input, 3 not found, 4 already exists / would
overwrite, 5 network unreachable, 6 the Hub answered with an HTTP error, 7 disk full or not writable; 1 is a bug
(a traceback is shown).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

BAD_INPUT, NOT_FOUND, EXISTS, NETWORK, HTTP, DISK = 2, 3, 4, 5, 6, 7


def clean_env(tmp: Path, endpoint: str | None = None, **extra: str) -> dict[str, str]:
    """The caller's environment without Hub settings or DATADIET_DEBUG, with a private HF_HOME under ``tmp``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_")) and k != "DATADIET_DEBUG"}
    env.update(
        HF_HOME=str(tmp / "hf_home"),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_DATASETS_DISABLE_PROGRESS_BARS="1",
        HF_HUB_DISABLE_XET="1",
        PYTHONPATH=str(REPO_ROOT),
        NO_PROXY="127.0.0.1,localhost",
    )
    if endpoint is not None:
        env["HF_ENDPOINT"] = endpoint
    env.update(extra)
    return env


def datadiet(
    *args: str, tmp: Path, endpoint: str | None = None, timeout: float = 180, **extra: str
) -> subprocess.CompletedProcess:
    """``datadiet ARGS`` in a fresh interpreter (the console script's module), cwd ``tmp``."""
    return subprocess.run(
        [sys.executable, "-m", "datadiet_hub.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env(tmp, endpoint, **extra),
        cwd=tmp,
    )


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def assert_one_error(result: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    """Exit ``code``, exactly one ``error:`` line (containing every needle), no traceback; returns the line."""
    detail = f"rc={result.returncode}\nstdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-6000:]}"
    assert "Traceback" not in result.stderr, detail
    lines = error_lines(result.stderr)
    assert len(lines) == 1, detail
    assert result.returncode == code, detail
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


def closed_port_endpoint() -> str:
    """An http endpoint on loopback where nothing listens (connection refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every regular file under ``folder`` (relative path -> bytes), to prove nothing changed or was added."""
    if not folder.exists():
        return {}
    if folder.is_file():
        return {".": folder.read_bytes()}
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def tiny_png() -> bytes:
    """A valid 1x1 grey PNG."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00\x80")) + chunk(b"IEND", b"")
    )
