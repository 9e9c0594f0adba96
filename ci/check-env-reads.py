#!/usr/bin/env python3
"""Fails when Rust code below the CLI reads the environment without saying why.

Settings reach backends as typed `BackendOptions`, filled by the CLI from
flags and the `GLMHAL_*` variables in one place (`cli/src/options.rs`).
The exceptions are reads of variables that belong to someone else (a
vendor's toolkit root, `PATH`) or that are the only input a harness has
(tests, criterion targets, the CANN simulator loaded as a C library); each
such read carries a comment starting `// Environment:` within the five
lines above it, or in the file's first lines for a whole file of them.
Tests (`tests/` directories) are exempt; `cli/` and `fuzz/` are above the line.
"""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
READ = re.compile(r"\benv::(var|var_os|vars|vars_os|set_var|remove_var)\b")
REASON = "// Environment:"
WINDOW = 5


def sources():
    files = subprocess.run(
        ["git", "ls-files", "*.rs"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return [
        f
        for f in files
        if not f.startswith(("cli/", "fuzz/")) and "/tests/" not in f
    ]


def unexplained(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        lines = f.read().split("\n")
    whole_file = any(REASON in line for line in lines[:20] if line.startswith("//"))
    found = []
    for i, line in enumerate(lines):
        if not READ.search(line) or line.lstrip().startswith("//"):
            continue
        if whole_file:
            continue
        if not any(REASON in l for l in lines[max(0, i - WINDOW) : i + 1]):
            found.append(f"{path}:{i + 1}: {line.strip()}")
    return found


def main():
    failures = [f for path in sources() for f in unexplained(path)]
    if failures:
        print("environment read below the CLI without an `// Environment:` reason:")
        print("\n".join(failures))
        sys.exit(1)
    print("check-env-reads: every environment read below the CLI says why")


if __name__ == "__main__":
    main()
