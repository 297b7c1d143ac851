"""Shared fixtures: paths, the edgeseg binary, and scripts/ on the import path."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def edgeseg():
    """Run the edgeseg binary built by `cargo build` (or $EDGESEG_BIN)."""
    binary = Path(os.environ.get("EDGESEG_BIN", ROOT / "target" / "debug" / "edgeseg"))
    if not binary.exists():
        pytest.fail(f"{binary} not found: run `cargo build` first (or set EDGESEG_BIN)")

    def run(*args, check=True):
        proc = subprocess.run([str(binary), *map(str, args)], cwd=ROOT, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise AssertionError(f"edgeseg {' '.join(map(str, args))} failed:\n{proc.stderr}")
        return proc

    return run
