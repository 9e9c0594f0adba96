#!/usr/bin/env python3
"""Fails when a Rust function outside tests is longer than 120 lines.

A long function is a per-op match or a command that does every phase
itself; it splits by family or by phase, next to the code each part
concerns. Tests are exempt: files under a `tests/` directory, `tests.rs`
files and inline `#[cfg(test)]` modules. A function is measured from its
`fn` line to the closing brace at the same indentation (rustfmt's layout).
"""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIMIT = 120
FN = re.compile(r"^(\s*)(pub(\([a-z:]+\))? )?(const )?(unsafe )?(extern \"C\" )?fn (\w+)")
TEST_MODULE = re.compile(r"^(\s*)(pub(\([a-z:]+\))? )?mod \w+ \{")


def rust_sources():
    files = subprocess.run(
        ["git", "ls-files", "*.rs"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return [
        f
        for f in files
        if "/tests/" not in f and not f.startswith("tests/") and not f.endswith("tests.rs")
    ]


def closing(lines, start, indent):
    """Index of the line that closes the item opened at `start`."""
    for j in range(start + 1, len(lines)):
        if lines[j] == " " * indent + "}":
            return j
    return start


def long_functions(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        lines = f.read().split("\n")
    found = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip() == "#[cfg(test)]" and i + 1 < len(lines):
            module = TEST_MODULE.match(lines[i + 1])
            if module:
                i = closing(lines, i + 1, len(module.group(1))) + 1
                continue
        m = FN.match(line)
        if m and not line.rstrip().endswith(";"):
            end = closing(lines, i, len(m.group(1)))
            length = end - i + 1
            if length > LIMIT:
                found.append((i + 1, m.group(7), length))
        i += 1
    return found


def main():
    failures = [
        f"{path}:{line} `{name}` is {length} lines"
        for path in rust_sources()
        for line, name, length in long_functions(path)
    ]
    if failures:
        print(f"functions longer than {LIMIT} lines outside tests:")
        print("\n".join(failures))
        sys.exit(1)
    print(f"check-function-length: no function outside tests is over {LIMIT} lines")


if __name__ == "__main__":
    main()
