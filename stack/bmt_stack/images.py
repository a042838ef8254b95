"""The local cluster's container images, built on this machine (no registry is reachable here).

- `base_image`: Debian bookworm with Python 3.11, made by mmdebstrap (the root Dockerfile's
  `BASE_IMAGE`, in place of `python:3.11-slim`);
- `bmt_image`: the root Dockerfile, built by `buildah bud` on that base;
- `pause_image`: Kubernetes' pause.c, compiled static, as `registry.k8s.io/pause:3.10` (the
  sandbox image of the node's containerd);
- `coredns_image`: a static CoreDNS binary, as `localhost/coredns:1.12.1`.

Each image ends as an OCI archive in `<cache>/image-<name>-<key>/image.tar`, the key a hash of
everything that goes into the image (install.py's cache convention), so it is rebuilt only when an
input changes. `load` imports the archives into the node's containerd, skipping those it holds.

buildah keeps its storage in the cache too (`<cache>/buildah`): one `rm -rf` of the cache resets
everything, nothing is mixed with a podman or buildah store of the machine's, and the base image
(the one layer store the builds reuse) survives like the archives do. The archives are the record:
an image missing from the storage is restored from its archive. The storage driver is overlay when
the kernel lets this machine mount one on the cache's file system, else vfs (probed once, kept in
`<cache>/buildah/driver`: a store cannot change driver).

Needs root (mmdebstrap's root mode, buildah's rootful storage, ctr).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bmt_stack import install
from bmt_stack.config import RECIPES

# Part of every image's key: bump it to rebuild them all (a change of how they are made).
RECIPE_VERSION = "2"

SUITE = "bookworm"
# minbase is Essential:yes only: `passwd` (groupadd/useradd, which the Dockerfile runs) is not.
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates", "passwd")
# Like the slim images of Docker Hub: no manuals, documentation (copyrights kept) or translations.
BASE_DPKG_OPTIONS = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/info/*",
)
BASE_ENV = (
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG=C.UTF-8",
)
BASE_REPOSITORY = "localhost/bmt-base"
BMT_REPOSITORY = "localhost/bmt"

# The tag the node's containerd names as its sandbox image (components/node.py PAUSE_IMAGE).
PAUSE_REF = "registry.k8s.io/pause:3.10"
PAUSE_CFLAGS = ("-Os", "-Wall", "-Werror", "-static", "-s", "-DVERSION=v3.10-bmt")
# As the upstream image: a user of no account, the binary alone.
PAUSE_USER = "65535:65535"

COREDNS_REF = "localhost/coredns:1.12.1"

# The host's CA bundle: pip reaches PyPI through a TLS-intercepting proxy here. It is mounted into
# the build's RUN steps only, never copied into an image.
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

# Never part of an image's key, whatever .dockerignore says (the Dockerfile's context drops them).
ALWAYS_IGNORED = ("**/__pycache__", "**/*.pyc")
# Old archives of the BMT image (one per change of its sources) kept besides the current one.
KEEP_BMT_ARCHIVES = 2


@dataclass(frozen=True)
class Image:
    """An image built here: its name and the OCI archive that holds it (in the cache)."""

    ref: str
    archive: Path

    def digest(self) -> str:
        """The digest of the image's manifest, as `ctr images ls` shows it once imported."""
        return archive_digest(self.archive)


# ---------------------------------------------------------------------------------------------
# Cache keys


def key_of(*parts: str | bytes) -> str:
    """A short hash of `parts`, each framed by its length so no two lists give one stream."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(f"{len(data)}:".encode())
        digest.update(data)
    return digest.hexdigest()[:12]


def dockerfile_sources(dockerfile: Path) -> list[str]:
    """The context paths the Dockerfile's COPY and ADD lines take (`--from=` copies excluded)."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    sources: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].upper() not in ("COPY", "ADD"):
            continue
        if any(word.startswith("--from") for word in words[1:]):
            continue
        args = [word for word in words[1:] if not word.startswith("--")]
        if args and args[0].startswith("["):
            raise ValueError(f"{dockerfile}: the JSON form of {words[0]} is not read: {line}")
        sources.extend(args[:-1])
    return sources


def _pattern(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regular expression over a path relative to the context;
    matching a folder matches all below it."""
    text = pattern.strip().strip("/")
    out = ""
    i = 0
    while i < len(text):
        if text.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif text.startswith("**", i):
            out += ".*"
            i += 2
        elif text[i] == "*":
            out += "[^/]*"
            i += 1
        elif text[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(text[i])
            i += 1
    return re.compile(out + "(?:/.*)?")


def ignore_rules(project_root: Path) -> list[tuple[bool, re.Pattern[str]]]:
    """(excludes?, pattern) in order, from .dockerignore and ALWAYS_IGNORED; the last match wins."""
    lines = list(ALWAYS_IGNORED)
    dockerignore = project_root / ".dockerignore"
    if dockerignore.exists():
        lines += dockerignore.read_text().splitlines()
    rules: list[tuple[bool, re.Pattern[str]]] = []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        rules.append((not negated, _pattern(line.lstrip("!"))))
    return rules


def is_ignored(relative: str, rules: Sequence[tuple[bool, re.Pattern[str]]]) -> bool:
    ignored = False
    for excludes, pattern in rules:
        if pattern.fullmatch(relative):
            ignored = excludes
    return ignored


def context_files(project_root: Path) -> list[str]:
    """The files that go into the BMT image: the Dockerfile, its .dockerignore, and every file
    of the context its COPY lines take, minus the ignored (relative paths, sorted)."""
    dockerfile = project_root / "Dockerfile"
    rules = ignore_rules(project_root)
    files = {"Dockerfile"}
    if (project_root / ".dockerignore").exists():
        files.add(".dockerignore")
    for source in dockerfile_sources(dockerfile):
        top = project_root / source
        if not top.exists():
            raise FileNotFoundError(f"{dockerfile} copies {source}, which is not there")
        candidates = [top] if top.is_file() else [p for p in top.rglob("*") if p.is_file()]
        for path in candidates:
            relative = path.relative_to(project_root).as_posix()
            if not is_ignored(relative, rules):
                files.add(relative)
    return sorted(files)


def bmt_key(project_root: Path, base_ref: str) -> str:
    """The BMT image's tag: a hash of the base image's name and of each file that goes into the
    image (its path, whether it is executable, its bytes)."""
    parts: list[str | bytes] = ["bmt", RECIPE_VERSION, base_ref]
    for relative in context_files(project_root):
        path = project_root / relative
        parts += [relative, "x" if os.access(path, os.X_OK) else "-", path.read_bytes()]
    return key_of(*parts)


def base_key() -> str:
    return key_of("base", RECIPE_VERSION, SUITE, *BASE_PACKAGES, *BASE_DPKG_OPTIONS, *BASE_ENV)


def pause_key(source: Path) -> str:
    return key_of(
        "pause", RECIPE_VERSION, PAUSE_REF, PAUSE_USER, *PAUSE_CFLAGS, source.read_bytes()
    )


def coredns_key(binary: Path) -> str:
    digest = hashlib.sha256()
    with binary.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return key_of("coredns", RECIPE_VERSION, COREDNS_REF, digest.hexdigest())


def repository(ref: str) -> str:
    """`registry:5000/a/b:tag` -> `registry:5000/a/b` (the name without its tag or digest)."""
    name = ref.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def archive_digest(archive: Path) -> str:
    """The manifest digest an OCI archive's index names (buildah writes one manifest)."""
    with tarfile.open(archive) as tar:
        member = tar.extractfile("index.json")
        if member is None:
            raise ValueError(f"{archive}: no index.json")
        index = json.load(member)
    manifests = index.get("manifests", [])
    if len(manifests) != 1:
        raise ValueError(f"{archive}: {len(manifests)} manifests in its index, one expected")
    return str(manifests[0]["digest"])


def is_static_elf(binary: Path) -> bool:
    """Whether `binary` is an ELF executable with no program interpreter (no dynamic loader)."""
    with binary.open("rb") as stream:
        header = stream.read(64)
        if len(header) < 64 or header[:4] != b"\x7fELF" or header[4] != 2:
            raise ValueError(f"{binary}: not a 64-bit ELF file")
        order = "<" if header[5] == 1 else ">"
        (phoff,) = struct.unpack_from(order + "Q", header, 32)
        phentsize, phnum = struct.unpack_from(order + "HH", header, 54)
        stream.seek(phoff)
        table = stream.read(phentsize * phnum)
    pt_interp = 3
    return all(
        struct.unpack_from(order + "I", table, i * phentsize)[0] != pt_interp for i in range(phnum)
    )


# ---------------------------------------------------------------------------------------------
# Tools


def _run(argv: Sequence[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run a command, return its stdout; a failure raises with the tail of its output."""
    result = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        out = (result.stdout + result.stderr).strip().splitlines()
        raise RuntimeError(f"{' '.join(argv)} failed:\n" + "\n".join(out[-30:]))
    return result.stdout


def ensure_tools() -> None:
    """buildah and mmdebstrap from Debian (root, once per machine). runc is only a Recommends of
    buildah, which apt_install does not take, yet every RUN of a build needs it."""
    if shutil.which("buildah") and shutil.which("mmdebstrap") and shutil.which("runc"):
        return
    install.apt_install(["buildah", "mmdebstrap", "runc"])


class Buildah:
    """buildah against the cache's own storage."""

    def __init__(self, cache: Path) -> None:
        self.home = cache / "buildah"
        self.root = self.home / "storage"
        # Locks and mount state: transient, on /run as buildah's default is (a reboot clears it).
        self.runroot = Path("/run") / f"bmt-buildah-{key_of(str(self.root.resolve()))}"
        self.home.mkdir(parents=True, exist_ok=True)
        self.driver = self._driver()

    def _driver(self) -> str:
        chosen = self.home / "driver"
        if chosen.exists():
            return chosen.read_text().strip()
        driver = "overlay" if self._overlay_mounts() else "vfs"
        chosen.write_text(driver + "\n")
        return driver

    def _overlay_mounts(self) -> bool:
        with tempfile.TemporaryDirectory(dir=self.home, prefix="probe-") as probe:
            dirs = {name: Path(probe) / name for name in ("lower", "upper", "work", "merged")}
            for folder in dirs.values():
                folder.mkdir()
            options = f"lowerdir={dirs['lower']},upperdir={dirs['upper']},workdir={dirs['work']}"
            mount = ["mount", "-t", "overlay", "overlay", "-o", options, str(dirs["merged"])]
            if subprocess.run(mount, capture_output=True, check=False).returncode != 0:
                return False
            subprocess.run(["umount", str(dirs["merged"])], capture_output=True, check=False)
            return True

    def argv(self, *args: str) -> list[str]:
        return [
            "buildah",
            "--root",
            str(self.root),
            "--runroot",
            str(self.runroot),
            "--storage-driver",
            self.driver,
            *args,
        ]

    def __call__(self, *args: str, cwd: Path | None = None) -> str:
        return _run(self.argv(*args), cwd=cwd).strip()

    def has(self, ref: str) -> bool:
        argv = self.argv("inspect", "--type", "image", ref)
        return subprocess.run(argv, capture_output=True, check=False).returncode == 0

    def refs(self, repo: str) -> list[str]:
        listed = self("images", "--format", "{{.Name}}:{{.Tag}}")
        return [ref for ref in listed.split() if repository(ref) == repo]

    def restore(self, image: Image) -> None:
        """Put an image back into the storage from its archive (a storage reset, another cache)."""
        if self.has(image.ref):
            return
        image_id = self("pull", f"oci-archive:{image.archive}").splitlines()[-1]
        self("tag", image_id, image.ref)

    @contextlib.contextmanager
    def scratch(self) -> Iterator[str]:
        """A working container from scratch, removed whatever happens."""
        container = self("from", "scratch")
        try:
            yield container
        finally:
            subprocess.run(self.argv("rm", container), capture_output=True, check=False)

    def push(self, ref: str, archive: Path) -> None:
        partial = archive.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        self("push", ref, f"oci-archive:{partial}:{ref}")
        partial.replace(archive)


@contextlib.contextmanager
def _locked(cache: Path) -> Iterator[None]:
    """One build at a time per cache (two clones sharing it, two sessions)."""
    lock = cache / "buildah" / "lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _cached(
    cache: Path,
    name: str,
    key: str,
    ref: str,
    title: str,
    build: Callable[[Buildah], None],
    *,
    keep_in_storage: bool = False,
) -> Image:
    """The archive of image `name` at `key`; unless a complete one is there, `build` commits
    `ref` into the storage and it is pushed into the cache. Only an image built upon (the base)
    stays in the storage afterwards: the archive is the record."""
    folder = cache / f"image-{name}-{key}"
    image = Image(ref=ref, archive=folder / "image.tar")
    if install.is_complete(folder):
        return image
    ensure_tools()
    with _locked(cache):
        if install.is_complete(folder):  # built by another process meanwhile
            return image
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        buildah = Buildah(cache)
        with install.step(f"image {ref}: {title}"):
            try:
                build(buildah)
            except BaseException:
                # No working container of a failed build stays (the storage is this module's own
                # and the lock is held: none is another's).
                subprocess.run(buildah.argv("rm", "--all"), capture_output=True, check=False)
                raise
            buildah.push(ref, image.archive)
            if not keep_in_storage:
                buildah("rmi", ref)
                buildah("rmi", "--prune")
        install.mark_complete(folder)
    return image


# ---------------------------------------------------------------------------------------------
# The images


def base_image(cache: Path) -> Image:
    """Debian `SUITE` (minbase, with its updates and security suites) with Python 3.11 and venv."""
    key = base_key()
    ref = f"{BASE_REPOSITORY}:{key}"

    def build(buildah: Buildah) -> None:
        with buildah.scratch() as container:
            rootfs = buildah("mount", container)
            _run(
                [
                    "mmdebstrap",
                    "--mode=root",
                    "--variant=minbase",
                    f"--include={','.join(BASE_PACKAGES)}",
                    *(f"--dpkgopt={option}" for option in BASE_DPKG_OPTIONS),
                    '--aptopt=Acquire::Languages "none"',
                    "--quiet",
                    SUITE,
                    rootfs,
                ]
            )
            # mmdebstrap leaves the host's resolver and name behind: the runtime provides both.
            for name in ("resolv.conf", "hostname"):
                (Path(rootfs) / "etc" / name).unlink(missing_ok=True)
            buildah("umount", container)
            buildah(
                "config",
                *(arg for env in BASE_ENV for arg in ("--env", env)),
                "--cmd",
                '["python"]',
                "--label",
                "org.opencontainers.image.title=bmt-base",
                "--label",
                f"org.opencontainers.image.description=Debian {SUITE} minbase with "
                + ", ".join(BASE_PACKAGES),
                container,
            )
            buildah("commit", "--format", "oci", container, ref)
        # Earlier bases (an older recipe) are of no use to the builds any more.
        for old in buildah.refs(BASE_REPOSITORY):
            if old != ref:
                buildah("rmi", old)

    return _cached(
        cache,
        "base",
        key,
        ref,
        f"mmdebstrap of Debian {SUITE} (first run only)",
        build,
        keep_in_storage=True,
    )


def bmt_image(cache: Path, project_root: Path, base: Image | None = None) -> Image:
    """The root Dockerfile built on `base` (`base_image(cache)` unless given), tagged with the
    hash of what goes into it."""
    base = base or base_image(cache)
    key = bmt_key(project_root, base.ref)
    ref = f"{BMT_REPOSITORY}:{key}"

    def build(buildah: Buildah) -> None:
        buildah.restore(base)
        mounts = ["-v", f"{CA_BUNDLE}:{CA_BUNDLE}:ro"] if CA_BUNDLE.exists() else []
        buildah(
            "bud",
            "--network",
            "host",
            "--pull=never",
            "--format",
            "oci",
            "--build-arg",
            f"BASE_IMAGE={base.ref}",
            *mounts,
            "-f",
            str(project_root / "Dockerfile"),
            "-t",
            ref,
            str(project_root),
        )

    image = _cached(
        cache,
        "bmt",
        key,
        ref,
        "buildah bud of the Dockerfile (again on a change of its sources)",
        build,
    )
    _prune_archives(cache, "bmt", keep=image.archive.parent)
    return image


def kubernetes_source() -> Path:
    """The k8s.io/kubernetes module of the stack's recipe (recipes/kube), in Go's module cache."""
    out = _run(["go", "mod", "download", "-json", "k8s.io/kubernetes"], cwd=RECIPES / "kube")
    return Path(json.loads(out)["Dir"])


def pause_image(cache: Path) -> Image:
    """Kubernetes' pause.c, compiled static, alone in an image from scratch."""
    source = kubernetes_source() / "build" / "pause" / "linux" / "pause.c"
    key = pause_key(source)

    def build(buildah: Buildah) -> None:
        with tempfile.TemporaryDirectory() as work:
            binary = Path(work) / "pause"
            _run(["gcc", *PAUSE_CFLAGS, "-o", str(binary), str(source)])
            _from_scratch(buildah, binary, "/pause", PAUSE_REF, ["--user", PAUSE_USER])

    return _cached(cache, "pause", key, PAUSE_REF, "gcc -static of pause.c (first run only)", build)


def coredns_image(cache: Path, coredns_bin: Path) -> Image:
    """A static CoreDNS binary alone in an image from scratch (root, as the Deployment binds 53
    with NET_BIND_SERVICE)."""
    if not is_static_elf(coredns_bin):
        raise RuntimeError(
            f"{coredns_bin} is linked dynamically: an image from scratch has no libc for it "
            "(build it with CGO_ENABLED=0)"
        )
    key = coredns_key(coredns_bin)

    def build(buildah: Buildah) -> None:
        _from_scratch(buildah, coredns_bin, "/coredns", COREDNS_REF, [])

    return _cached(cache, "coredns", key, COREDNS_REF, "the static binary (first run only)", build)


def _from_scratch(
    buildah: Buildah, binary: Path, target: str, ref: str, config: Sequence[str]
) -> None:
    with buildah.scratch() as container:
        buildah("copy", "--chmod", "0755", container, str(binary), target)
        buildah("config", "--entrypoint", json.dumps([target]), *config, container)
        buildah("commit", "--format", "oci", container, ref)


def _prune_archives(cache: Path, name: str, keep: Path) -> None:
    """The BMT image gets a new archive on every change of its sources: keep `keep` and the
    KEEP_BMT_ARCHIVES newest others, remove the rest."""
    others = [
        folder
        for folder in cache.glob(f"image-{name}-*")
        if folder != keep and install.is_complete(folder)
    ]
    others.sort(key=lambda folder: (folder / install.MARKER).stat().st_mtime, reverse=True)
    for folder in others[KEEP_BMT_ARCHIVES:]:
        shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Loading into containerd


def listed_images(ctr: Sequence[str]) -> dict[str, str]:
    """ref -> manifest digest of the images containerd holds (`ctr images ls`)."""
    lines = _run([*ctr, "images", "ls"]).splitlines()
    held: dict[str, str] = {}
    for line in lines[1:]:  # a header first: REF TYPE DIGEST SIZE PLATFORMS LABELS
        words = line.split()
        if len(words) >= 3:
            held[words[0]] = words[2]
    return held


def load(images: Sequence[Image], ctr: list[str]) -> None:
    """Import each image's archive into containerd through `ctr` (the argv prefix that reaches
    the node's containerd in its namespace, e.g. `ctr --address SOCK -n k8s.io`), unless it holds
    that ref at that digest already: a warm start costs one `ctr images ls`.

    An OCI archive names its image in the index annotation org.opencontainers.image.ref.name,
    which buildah sets to the full ref, and ctr 1.6 keeps that name. `--base-name` (the ref's
    repository) makes sure the import creates no other: ctr drops, silently, every name that does
    not start with it, hence the check that each ref is listed afterwards."""
    held = listed_images(ctr)
    todo = [image for image in images if held.get(image.ref) != image.digest()]
    for image in todo:
        _run([*ctr, "images", "import", "--base-name", repository(image.ref), str(image.archive)])
    if todo:
        held = listed_images(ctr)
        missing = [image.ref for image in todo if held.get(image.ref) != image.digest()]
        if missing:
            raise RuntimeError(f"containerd does not list {', '.join(missing)} after its import")
