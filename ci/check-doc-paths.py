#!/usr/bin/env python3
"""Fails when README.md, ARCHITECTURE.md or a page under docs/ names a
repository path that does not exist, or a front page outgrows its limit.

Checked: every Markdown link target that is not a URL or an anchor, and
every `code span` that names a repository path: one that starts with a
top-level directory of the repository (taken from the root, globs
allowed), or a relative path or bare file name of a source, script or
document (it must end some tracked path: `kernels/gemm.rs`, `loader.rs`).
Files a user or a run makes (`model.safetensors.index.json`,
`reports/...`), system paths and schema names (`glmhal.ci/2`) are not
repository paths.
"""
import fnmatch
import glob
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CODE = (".rs", ".sh", ".py", ".toml", ".cu", ".h")
SOURCES = CODE + (".md",)
# The front pages stay short: measurements go to docs/results/, a
# backend's internals to its crate's documentation.
LIMITS = {"README.md": 250, "ARCHITECTURE.md": 300}
PATHLIKE = re.compile(r"^[A-Za-z0-9_.\-*/]+$")


def tracked_files():
    return subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()


def ends_some(files, span):
    """Whether `span` (a file, a relative path, or a directory ending in
    `/`; globs allowed) names the end of a tracked path."""
    pattern = span.rstrip("/")
    for f in files:
        parts = f.split("/")
        # every suffix of the path, and for a directory every suffix of its parents
        stops = range(len(parts) + 1) if span.endswith("/") else [len(parts)]
        for stop in stops:
            for start in range(stop):
                if fnmatch.fnmatchcase("/".join(parts[start:stop]), pattern):
                    return True
    return False


def candidates(text):
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if not re.match(r"^(https?:|mailto:|#)", target):
            yield target.split("#")[0], True
    for span in re.findall(r"`([^`\n]+)`", text):
        span = span.strip()
        if PATHLIKE.match(span) and not span.startswith(("-", "/", ".")):
            yield span, False


def main():
    files = tracked_files()
    top = {f.split("/")[0] for f in files if "/" in f}
    pages = ["README.md", "ARCHITECTURE.md"] + sorted(glob.glob("docs/*.md", root_dir=ROOT))
    missing = []
    for page in pages:
        base = os.path.dirname(os.path.join(ROOT, page))
        with open(os.path.join(ROOT, page), encoding="utf-8") as f:
            text = f.read()
        # Fenced blocks hold commands and their output, not references.
        text = re.sub(r"```.*?```", "", text, flags=re.S)
        for path, is_link in sorted(set(candidates(text))):
            if is_link:
                ok = os.path.exists(os.path.join(base, path))
            elif path.split("/")[0] in top and "/" in path:
                ok = bool(glob.glob(os.path.join(ROOT, path.rstrip("/"))))
            elif (path.endswith(CODE) and "/" not in path) or (
                "/" in path and (path.endswith(SOURCES) or path.endswith("/"))
            ):
                ok = ends_some(files, path)
            else:
                continue
            if not ok:
                missing.append(f"{page}: {path}")
    for page, most in LIMITS.items():
        with open(os.path.join(ROOT, page), encoding="utf-8") as f:
            lines = sum(1 for _ in f)
        if lines > most:
            missing.append(f"{page}: {lines} lines, more than {most}")
    if missing:
        print("documentation that is not true or too long:", file=sys.stderr)
        print("\n".join(missing), file=sys.stderr)
        return 1
    print(f"check-doc-paths: every path named in {len(pages)} pages exists")
    return 0


if __name__ == "__main__":
    sys.exit(main())
