"""Install steps: build once from the package registries, cache by recipe content.

Each artefact lives in `<cache>/<name>-<hash of its recipe>`; a changed recipe means a new
folder, so a stale build is never reused. A `.complete` marker is written last: a step cut
short (Ctrl-C, a killed session) is redone, not trusted.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from bmt_stack.config import RECIPES

MARKER = ".complete"


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def step(title: str, heartbeat: float = 20.0) -> Iterator[None]:
    """Announce a long step, print the elapsed time every `heartbeat` seconds, then its total."""
    say(f"==> {title}")
    started = time.monotonic()
    done = threading.Event()

    def beat() -> None:
        while not done.wait(heartbeat):
            say(f"    ... {title}: {time.monotonic() - started:.0f}s")

    ticker = threading.Thread(target=beat, daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()
    say(f"    done in {time.monotonic() - started:.1f}s")


def recipe_hash(*parts: Path | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            files = (
                sorted(p for p in part.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
                if part.is_dir()
                else [part]
            )
            for file in files:
                digest.update(file.name.encode())
                digest.update(file.read_bytes())
        else:
            digest.update(part.encode())
    return digest.hexdigest()[:12]


def cached_dir(cache: Path, name: str, *recipe: Path | str) -> Path:
    return cache / f"{name}-{recipe_hash(*recipe)}"


def is_complete(folder: Path) -> bool:
    return (folder / MARKER).exists()


def mark_complete(folder: Path) -> None:
    (folder / MARKER).write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))


def _check(argv: Sequence[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        out = (result.stdout + result.stderr).strip().splitlines()
        raise RuntimeError(f"{' '.join(argv)} failed:\n" + "\n".join(out[-30:]))


def maven_libs(cache: Path, recipe: str, extra: Sequence[str] = ()) -> Path:
    """Copy the runtime dependencies of `recipes/<recipe>/pom.xml` into a cached lib folder."""
    pom_dir = RECIPES / recipe
    target = cached_dir(cache, recipe, pom_dir, *extra)
    if is_complete(target):
        return target / "lib"
    shutil.rmtree(target, ignore_errors=True)
    with step(f"{recipe}: fetching jars from Maven Central (first run only)"):
        _check(
            [
                "mvn",
                "-B",
                "-q",
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={target / 'lib'}",
                *extra,
            ],
            cwd=pom_dir,
        )
    mark_complete(target)
    return target / "lib"


def go_build(cache: Path, recipe: str, packages: Sequence[str]) -> Path:
    """Build Go `packages` from the wrapper module `recipes/<recipe>` into a cached bin folder."""
    module = RECIPES / recipe
    target = cached_dir(cache, recipe, module, *packages)
    if is_complete(target):
        return target / "bin"
    shutil.rmtree(target, ignore_errors=True)
    (target / "bin").mkdir(parents=True)
    names = ", ".join(binary_name(p) for p in packages)
    with step(f"{recipe}: building {names} with Go (first run only, several minutes)"):
        _check(
            ["go", "build", "-trimpath", "-ldflags=-s -w", "-o", str(target / "bin"), *packages],
            cwd=module,
        )
    mark_complete(target)
    return target / "bin"


def binary_name(package: str) -> str:
    """The file name `go build` gives a command: its last path element, a /vN suffix skipped."""
    parts = package.split("/")
    if len(parts) > 1 and parts[-1][1:].isdigit() and parts[-1].startswith("v"):
        return parts[-2]
    return parts[-1]


def go_install(cache: Path, name: str, package_at_version: str, *, static: bool = False) -> Path:
    """`go install pkg@version` into a cached bin folder; returns the folder. `static` builds
    without cgo, for a binary that runs alone in an image made from scratch."""
    target = cached_dir(cache, name, package_at_version, *(["static"] if static else []))
    if is_complete(target):
        return target / "bin"
    shutil.rmtree(target, ignore_errors=True)
    (target / "bin").mkdir(parents=True)
    env = {**os.environ, "GOBIN": str(target / "bin"), **({"CGO_ENABLED": "0"} if static else {})}
    with step(f"{name}: go install {package_at_version} (first run only)"):
        _check(["go", "install", "-trimpath", "-ldflags=-s -w", package_at_version], env=env)
    mark_complete(target)
    return target / "bin"


def apt_install(packages: Sequence[str]) -> None:
    """Install Debian packages (root, once per machine): the stack's tools that Debian ships."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with step(f"installing Debian packages: {', '.join(packages)} (first run only)"):
        _check(["apt-get", "update", "-q"], env=env)
        _check(["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages], env=env)
