"""Generate the chart's CRDs from `crds/`: `python helm/sync_crds.py [--check]`.

`crds/*.yaml` is the one source of truth; `helm/bmt/crds/` holds generated copies (Helm installs
a chart's `crds/` folder before its templates). Each copy is the source file behind a header that
says where it comes from. `--check` writes nothing and exits 1 when a copy is missing, stale or
left over from a CRD that no longer exists (a test and CI run it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "crds"
TARGET = ROOT / "helm" / "bmt" / "crds"
HEADER = (
    "# generated from crds/{name} by helm/sync_crds.py, do not edit:\n"
    "# change crds/{name} and run `python helm/sync_crds.py`.\n"
)


def expected(source: Path = SOURCE) -> dict[str, str]:
    """File name -> the text its generated copy must have."""
    return {
        path.name: HEADER.format(name=path.name) + path.read_text()
        for path in sorted(source.glob("*.yaml"))
    }


def differences(source: Path = SOURCE, target: Path = TARGET) -> list[str]:
    """What is out of date in `target`, one line per file; empty when in sync."""
    want = expected(source)
    have = {path.name: path.read_text() for path in sorted(target.glob("*.yaml"))}
    problems = [f"missing: {target / name}" for name in want if name not in have]
    problems += [f"stale: {target / n}" for n in want if n in have and have[n] != want[n]]
    problems += [f"left over: {target / name}" for name in have if name not in want]
    return problems


def sync(source: Path = SOURCE, target: Path = TARGET) -> list[str]:
    """Make `target` equal to the generated copies; returns what was written or removed."""
    changed = differences(source, target)
    target.mkdir(parents=True, exist_ok=True)
    want = expected(source)
    for name, text in want.items():
        path = target / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    for path in target.glob("*.yaml"):
        if path.name not in want:
            path.unlink()
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate helm/bmt/crds/ from crds/.")
    parser.add_argument("--check", action="store_true", help="exit 1 if the copies differ")
    parser.add_argument("--source", type=Path, default=SOURCE, help=argparse.SUPPRESS)
    parser.add_argument("--target", type=Path, default=TARGET, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not sorted(args.source.glob("*.yaml")):
        print(f"no CRDs in {args.source}", file=sys.stderr)
        return 1
    if args.check:
        problems = differences(args.source, args.target)
        for line in problems:
            print(line, file=sys.stderr)
        if problems:
            print("run `python helm/sync_crds.py` to regenerate", file=sys.stderr)
            return 1
        print(f"{args.target} is in sync with {args.source}")
        return 0
    for line in sync(args.source, args.target):
        print(f"updated ({line})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
