#!/usr/bin/env python3
"""Check the shape of src/ that README's "How the code is laid out" promises:
no function longer than MAX_FN_LINES, clap known only to main.rs, cli.rs and
config.rs, and no import circle between modules (a module's `use` of
another module, or any `crate::` path to it, is an import; a parent's
`pub mod child;` is not). Prints what it finds; exits 1 on a breach."""

import re
import sys
from pathlib import Path

MAX_FN_LINES = 80
CLAP_ALLOWED = {"main", "cli", "config"}
ROOT = Path(__file__).resolve().parent.parent / "src"


def module_of(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "mod":
        parts.pop()
    return "::".join(parts) if parts != ["lib"] else "crate"


def files():
    return sorted(p for p in ROOT.rglob("*.rs"))


def long_functions(text: str):
    lines = text.split("\n")
    fn_re = re.compile(r"^(\s*)(pub(\([a-z]+\))? )?(const )?(unsafe )?(extern \"C\" )?fn (\w+)")
    for i, line in enumerate(lines):
        m = fn_re.match(line)
        if not m or line.rstrip().endswith(";"):
            continue
        indent = m.group(1)
        for j in range(i, len(lines)):
            if lines[j] == indent + "}":
                if j - i + 1 > MAX_FN_LINES:
                    yield m.group(7), i + 1, j - i + 1
                break


def crate_paths(text: str):
    """Every module path named through `crate::`, `use crate::{...}` groups
    expanded."""
    text = re.sub(r"//[^\n]*", "", text)
    out = []
    for m in re.finditer(r"crate::((?:\w+::)*)(\{[^;]*?\}|\w+)", text):
        prefix = m.group(1)
        tail = m.group(2)
        if tail.startswith("{"):
            stack = [(prefix, tail[1:-1])]
            while stack:
                pre, body = stack.pop()
                depth, start, items = 0, 0, []
                for k, c in enumerate(body + ","):
                    if c == "{":
                        depth += 1
                    elif c == "}":
                        depth -= 1
                    elif c == "," and depth == 0:
                        items.append(body[start:k].strip())
                        start = k + 1
                for it in filter(None, items):
                    g = re.match(r"((?:\w+::)*)\{(.*)\}$", it, re.S)
                    if g:
                        stack.append((pre + g.group(1), g.group(2)))
                    else:
                        out.append(pre + it.split(" as ")[0])
        else:
            out.append(prefix + tail)
    return out


def main() -> int:
    bad = 0
    modules = {module_of(p): p for p in files()}
    edges = {m: set() for m in modules}
    for mod, path in modules.items():
        text = path.read_text()
        for name, line, n in long_functions(text):
            print(f"{path.relative_to(ROOT.parent)}:{line}: fn {name} is {n} lines (at most {MAX_FN_LINES})")
            bad = 1
        short = mod.split("::")[0]
        if short not in CLAP_ALLOWED and re.search(r"\bclap::|use clap\b|crate::cli\b", text):
            print(f"{path.relative_to(ROOT.parent)}: imports clap or cli (only {sorted(CLAP_ALLOWED)} may)")
            bad = 1
        for ref in crate_paths(text):
            parts = [p for p in ref.split("::") if p not in ("self",)]
            target = None
            for k in range(len(parts), 0, -1):
                cand = "::".join(parts[:k])
                if cand in modules:
                    target = cand
                    break
            if target and target != mod:
                edges[mod].add(target)
    # Circles: strongly connected components with more than one module.
    index, low, onstack, stack, sccs = {}, {}, set(), [], []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        onstack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in onstack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                onstack.discard(w)
                comp.append(w)
                if w == v:
                    break
            sccs.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(modules):
        if v not in index:
            strong(v)
    for comp in sccs:
        if len(comp) > 1:
            print("import circle: " + " <-> ".join(sorted(comp)))
            bad = 1
    if not bad:
        n_edges = sum(len(e) for e in edges.values())
        print(f"layout ok: {len(modules)} modules, {n_edges} imports, no circle, "
              f"no function over {MAX_FN_LINES} lines, clap only in {sorted(CLAP_ALLOWED)}")
    return bad


if __name__ == "__main__":
    sys.exit(main())
