"""The browser snippet's committed build and the ``salewatch collect`` command line."""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from streams.cli import collect as collect_cli
from streams.collector.config import DEFAULT_PORT

SNIPPET_DIR = Path(__file__).resolve().parents[3] / "collector" / "snippet"
BUILD = SNIPPET_DIR / "dist" / "salewatch-vitals.min.js"
MAX_BUILD_BYTES = 12 * 1024


def test_committed_build_is_small_and_speaks_the_beacon_format() -> None:
    code = BUILD.read_text()
    assert len(code.encode()) <= MAX_BUILD_BYTES
    for field in ("page_load_id", "session_id", "user_id", "page_type", "sendBeacon"):
        assert field in code, field


def test_build_tools_are_pinned_exactly() -> None:
    package = json.loads((SNIPPET_DIR / "package.json").read_text())
    lock = json.loads((SNIPPET_DIR / "package-lock.json").read_text())
    pinned = {**package["dependencies"], **package["devDependencies"]}
    assert set(pinned) == {"web-vitals", "esbuild"}
    for name, version in pinned.items():
        assert version[0].isdigit(), f"{name} {version}: exact versions only"
        assert lock["packages"][f"node_modules/{name}"]["version"] == version


@pytest.mark.skipif(
    not (SNIPPET_DIR / "node_modules" / ".bin" / "esbuild").exists() or not shutil.which("npm"),
    reason="needs `npm ci` in collector/snippet",
)
def test_committed_build_is_what_the_source_builds(tmp_path: Path) -> None:
    out = tmp_path / "snippet.js"
    package = json.loads((SNIPPET_DIR / "package.json").read_text())
    command = package["scripts"]["build"].replace("dist/salewatch-vitals.min.js", str(out))
    tool, *args = shlex.split(command)
    binary = SNIPPET_DIR / "node_modules" / ".bin" / tool
    subprocess.run([str(binary), *args], cwd=SNIPPET_DIR, check=True, capture_output=True)
    assert out.read_bytes() == BUILD.read_bytes(), "rebuild: cd collector/snippet && npm run build"


def test_collect_command_registers_with_defaults() -> None:
    parser = argparse.ArgumentParser(prog="salewatch")
    collect_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["collect", "--port", "9200", "--settle-s", "1"])
    assert args.func is collect_cli.run
    assert (args.port, args.settle_s, args.host) == (9200, 1.0, None)
    defaults = parser.parse_args(["collect"])
    assert defaults.port is None, f"unset: the environment, then {DEFAULT_PORT}, decide"
