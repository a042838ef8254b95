"""The cache keys of the node's images (bmt_stack.images): an image is rebuilt when what goes into
it changes, and only then. No image is built here."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from bmt_stack import images
from bmt_stack.config import PROJECT_ROOT

DOCKERFILE = """\
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE} AS build
COPY pyproject.toml README.md ./
COPY pkg/ pkg/
RUN pip install .
FROM ${BASE_IMAGE} AS runtime
COPY --from=build /opt/app /opt/app
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "pkg" / "app").mkdir(parents=True)
    (root / "Dockerfile").write_text(DOCKERFILE)
    (root / ".dockerignore").write_text("# state\n.venv/\n**/*.pem\ntests/\n")
    (root / "pyproject.toml").write_text("[project]\nname = 'app'\n")
    (root / "README.md").write_text("app\n")
    (root / "pkg" / "app" / "__init__.py").write_text("")
    (root / "pkg" / "app" / "main.py").write_text("print('hi')\n")
    return root


def key(root: Path) -> str:
    return images.bmt_key(root, "localhost/bmt-base:abc")


def test_the_real_dockerfile_copies_the_project_file_and_the_packages() -> None:
    assert images.dockerfile_sources(PROJECT_ROOT / "Dockerfile") == [
        "pyproject.toml",
        "README.md",
        "stack/",
        "services/",
        "operator/",
    ]


def test_the_real_context_holds_no_cache_or_state() -> None:
    files = images.context_files(PROJECT_ROOT)
    assert "stack/bmt_stack/images.py" in files
    assert "pyproject.toml" in files
    assert not [f for f in files if "__pycache__" in f or f.endswith((".pyc", ".pem"))]
    assert not [f for f in files if f.startswith(("tests/", ".bmt/", ".venv/", "helm/"))]


def test_same_inputs_give_the_same_tag(project: Path, tmp_path: Path) -> None:
    copy = tmp_path / "elsewhere"
    shutil.copytree(project, copy)
    assert key(project) == key(project) == key(copy)
    assert len(key(project)) == 12


def test_a_changed_source_file_changes_the_tag(project: Path) -> None:
    before = key(project)
    (project / "pkg" / "app" / "main.py").write_text("print('hello')\n")
    assert key(project) != before


@pytest.mark.parametrize(
    "change",
    [
        "new file",
        "renamed file",
        "Dockerfile",
        "pyproject",
        "dockerignore",
        "executable bit",
    ],
)
def test_what_goes_into_the_image_is_in_the_tag(project: Path, change: str) -> None:
    before = key(project)
    app = project / "pkg" / "app"
    if change == "new file":
        (app / "extra.py").write_text("")
    elif change == "renamed file":
        (app / "main.py").rename(app / "other.py")
    elif change == "Dockerfile":
        (project / "Dockerfile").write_text(DOCKERFILE + "USER 10001\n")
    elif change == "pyproject":
        (project / "pyproject.toml").write_text("[project]\nname = 'app2'\n")
    elif change == "dockerignore":
        (project / ".dockerignore").write_text("**/*.pem\n")
    elif change == "executable bit":
        (app / "main.py").chmod(0o755)
    assert key(project) != before


def test_a_moved_file_changes_the_tag(project: Path) -> None:
    before = key(project)
    (project / "pkg" / "other").mkdir()
    (project / "pkg" / "app" / "main.py").rename(project / "pkg" / "other" / "main.py")
    assert key(project) != before


def test_pycache_and_ignored_files_do_not_change_the_tag(project: Path) -> None:
    before = key(project)
    cache = project / "pkg" / "app" / "__pycache__"
    cache.mkdir()
    (cache / "main.cpython-311.pyc").write_bytes(b"\x00compiled")
    (project / "pkg" / "app" / "stray.pyc").write_bytes(b"\x00")
    (project / "pkg" / "app" / "key.pem").write_text("secret")
    assert key(project) == before
    (cache / "main.cpython-311.pyc").write_bytes(b"\x00recompiled")
    assert key(project) == before


def test_files_outside_the_copied_paths_do_not_change_the_tag(project: Path) -> None:
    before = key(project)
    (project / "tests").mkdir()
    (project / "tests" / "test_x.py").write_text("")
    (project / "notes.txt").write_text("")
    assert key(project) == before


def test_the_base_image_is_in_the_tag(project: Path) -> None:
    assert images.bmt_key(project, "localhost/bmt-base:a") != images.bmt_key(
        project, "localhost/bmt-base:b"
    )


def test_a_copied_path_that_is_missing_is_an_error(project: Path) -> None:
    shutil.rmtree(project / "pkg")
    with pytest.raises(FileNotFoundError, match="pkg/"):
        key(project)


def test_copy_lines_continued_and_with_flags(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("COPY --chown=1:1 a.txt \\\n    b/ /dst/\nADD c.tar /x/\n")
    assert images.dockerfile_sources(dockerfile) == ["a.txt", "b/", "c.tar"]


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("**/__pycache__", "stack/bmt_stack/__pycache__/x.pyc", True),
        ("**/__pycache__", "__pycache__/x.pyc", True),
        ("**/*.pyc", "a/b/c.pyc", True),
        ("**/*.egg-info/", "stack/bmt.egg-info/PKG-INFO", True),
        ("tests/", "tests/unit/test_x.py", True),
        ("tests/", "stack/tests/x.py", False),
        ("*.md", "README.md", True),
        ("*.md", "docs/README.md", False),
        ("Dockerfile", "Dockerfile.other", False),
    ],
)
def test_dockerignore_patterns(pattern: str, path: str, matches: bool) -> None:
    assert bool(images._pattern(pattern).fullmatch(path)) is matches


def test_a_negated_pattern_takes_a_file_back(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("**/*.md\n!README.md\n")
    rules = images.ignore_rules(tmp_path)
    assert images.is_ignored("docs/x.md", rules)
    assert not images.is_ignored("README.md", rules)


def test_the_other_keys_follow_their_inputs(tmp_path: Path) -> None:
    source = tmp_path / "pause.c"
    source.write_text("int main(void) { return 0; }\n")
    before = images.pause_key(source)
    assert images.pause_key(source) == before
    source.write_text("int main(void) { return 1; }\n")
    assert images.pause_key(source) != before
    binary = tmp_path / "coredns"
    binary.write_bytes(b"one")
    first = images.coredns_key(binary)
    binary.write_bytes(b"two")
    assert images.coredns_key(binary) != first
    assert images.base_key() == images.base_key()


@pytest.mark.parametrize(
    ("ref", "repo"),
    [
        ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause"),
        ("localhost/bmt:0123abcd", "localhost/bmt"),
        ("localhost:5000/a/b:tag", "localhost:5000/a/b"),
        ("localhost:5000/a/b", "localhost:5000/a/b"),
        ("localhost/bmt@sha256:00", "localhost/bmt"),
    ],
)
def test_repository_of_a_ref(ref: str, repo: str) -> None:
    assert images.repository(ref) == repo


def oci_archive(path: Path, digest: str) -> Path:
    index = {"schemaVersion": 2, "manifests": [{"digest": digest, "size": 1}]}
    data = json.dumps(index).encode()
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("index.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def test_archive_digest_reads_the_index(tmp_path: Path) -> None:
    image = images.Image("localhost/x:1", oci_archive(tmp_path / "x.tar", "sha256:aa"))
    assert image.digest() == "sha256:aa"


MEDIA = "application/vnd.oci.image.manifest.v1+json"
LISTING = (
    "REF                        TYPE   DIGEST     SIZE      PLATFORMS   LABELS\n"
    f"registry.k8s.io/pause:3.10 {MEDIA} sha256:aa 316.2 KiB linux/amd64 -\n"
    f"localhost/bmt:old          {MEDIA} sha256:bb 141.0 MiB linux/amd64 -\n"
)


def test_load_imports_only_what_containerd_lacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pause = images.Image("registry.k8s.io/pause:3.10", oci_archive(tmp_path / "p.tar", "sha256:aa"))
    coredns = images.Image("localhost/coredns:1", oci_archive(tmp_path / "c.tar", "sha256:cc"))
    calls: list[list[str]] = []
    listing = [LISTING]

    def run(argv: Sequence[str], **_: object) -> str:
        calls.append(list(argv))
        if argv[-1] == "ls":
            return listing[0]
        listing[0] += "localhost/coredns:1 t sha256:cc 1 MiB linux/amd64 -\n"
        return ""

    monkeypatch.setattr(images, "_run", run)
    images.load([pause, coredns], ["ctr", "-n", "k8s.io"])
    imports = [argv for argv in calls if "import" in argv]
    assert imports == [
        [
            "ctr",
            "-n",
            "k8s.io",
            "images",
            "import",
            "--base-name",
            "localhost/coredns",
            str(coredns.archive),
        ]
    ]
    calls.clear()
    images.load([pause, coredns], ["ctr", "-n", "k8s.io"])
    assert calls == [["ctr", "-n", "k8s.io", "images", "ls"]]


def test_load_reimports_a_ref_at_another_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rebuilt = images.Image(
        "registry.k8s.io/pause:3.10", oci_archive(tmp_path / "p.tar", "sha256:dd")
    )
    monkeypatch.setattr(images, "_run", lambda argv, **_: LISTING)
    # The import "succeeds" but containerd still lists the old digest: that is an error.
    with pytest.raises(RuntimeError, match=r"does not list registry\.k8s\.io/pause:3\.10"):
        images.load([rebuilt], ["ctr"])


def test_static_elf_check(tmp_path: Path) -> None:
    assert not images.is_static_elf(Path(os.path.realpath(shutil.which("ls") or "/bin/ls")))
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("no gcc to make a static binary")
    source = tmp_path / "x.c"
    source.write_text("int main(void) { return 0; }\n")
    binary = tmp_path / "x"
    built = subprocess.run([gcc, "-static", "-o", str(binary), str(source)], check=False)
    if built.returncode != 0:
        pytest.skip("no static libc here")
    assert images.is_static_elf(binary)


def test_a_file_that_is_no_elf_is_refused(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n" + "#" * 100)
    with pytest.raises(ValueError, match="not a 64-bit ELF"):
        images.is_static_elf(script)
