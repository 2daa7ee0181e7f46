#!/usr/bin/env python3
"""Check the shape of src/ that README's "How the code is laid out" promises:
no function longer than MAX_FN_LINES, clap known only to main.rs, cli.rs and
config.rs, no import circle between modules (a module's `use` of another
module, or any `crate::` path to it, is an import; a parent's `pub mod
child;` is not), none between folders either (every module under src/X/
is folder X's, each top-level file is a node of its own), and `unsafe`
(blocks, unsafe fn, unsafe impl) only in src/sys/ and src/process/, tests
and comments aside. Prints what it finds; exits 1 on a breach."""

import re
import sys
from collections import Counter
from pathlib import Path

MAX_FN_LINES = 80
CLAP_ALLOWED = {"main", "cli", "config"}
UNSAFE_ALLOWED = {"sys/", "process/"}
ROOT = Path(__file__).resolve().parent.parent / "src"


def module_of(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "mod":
        parts.pop()
    return "::".join(parts) if parts != ["lib"] else "crate"


def files():
    return sorted(p for p in ROOT.rglob("*.rs"))


def folder_of(path: Path) -> str:
    """The top-level folder of src/ that `path` is in ("host/"), or the
    top-level file itself ("config.rs")."""
    parts = path.relative_to(ROOT).parts
    return parts[0] + "/" if len(parts) > 1 else parts[0]


def blank(s: str) -> str:
    return re.sub(r"[^\n]", " ", s)


RAW_STRING = re.compile(r'[bc]?r(#*)"')
CHAR = re.compile(r"'(?:\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F_]+\}|.)|[^\\'\n])'")


def code_only(text: str) -> str:
    """`text` with its comments and its string and character literals
    blanked; newlines stay, so that line numbers do too."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        word_before = i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_")
        raw = None if word_before else RAW_STRING.match(text, i)
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
        elif raw:
            end = text.find('"' + raw.group(1), raw.end())
            j = n if end < 0 else end + 1 + len(raw.group(1))
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
        elif c == "'" and CHAR.match(text, i):
            j = CHAR.match(text, i).end()
        else:
            out.append(c)
            i += 1
            continue
        out.append(blank(text[i:j]))
        i = j
    return "".join(out)


def without_tests(code: str) -> str:
    """`code` (as code_only gives it) with every `#[cfg(test)]` item
    blanked: a module or function to its closing brace, anything else to
    its semicolon."""
    while m := re.search(r"#\[cfg\(test\)\]", code):
        j, depth = m.end(), 0
        while j < len(code):
            c = code[j]
            j += 1
            if c in "([":
                depth += 1
            elif c in ")]":
                depth -= 1
            elif depth == 0 and c == ";":
                break
            elif depth == 0 and c == "{":
                depth = 1
                while j < len(code) and depth:
                    depth += {"{": 1, "}": -1}.get(code[j], 0)
                    j += 1
                break
        code = code[: m.start()] + blank(code[m.start() : j]) + code[j:]
    return code


def unsafe_lines(text: str):
    """The lines of the `unsafe` keywords outside tests and comments."""
    code = without_tests(code_only(text))
    if re.search(r"#!\[cfg\(test\)\]", code):
        return []
    return [code.count("\n", 0, m.start()) + 1 for m in re.finditer(r"\bunsafe\b", code)]


def strong_components(nodes, edges):
    """The strongly connected components of the graph (Tarjan's)."""
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
    for v in sorted(nodes):
        if v not in index:
            strong(v)
    return sccs


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
    bad = Counter()
    modules = {module_of(p): p for p in files()}
    edges = {m: set() for m in modules}
    unsafe = {folder_of(p): 0 for p in modules.values()}
    for mod, path in modules.items():
        text = path.read_text()
        for name, line, n in long_functions(text):
            print(f"{path.relative_to(ROOT.parent)}:{line}: fn {name} is {n} lines (at most {MAX_FN_LINES})")
            bad["long function"] += 1
        short = mod.split("::")[0]
        if short not in CLAP_ALLOWED and re.search(r"\bclap::|use clap\b|crate::cli\b", text):
            print(f"{path.relative_to(ROOT.parent)}: imports clap or cli (only {sorted(CLAP_ALLOWED)} may)")
            bad["clap import"] += 1
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
        lines = unsafe_lines(text)
        unsafe[folder_of(path)] += len(lines)
        if lines and folder_of(path) not in UNSAFE_ALLOWED:
            shown = ("line " if len(lines) == 1 else "lines ") + ", ".join(map(str, lines))
            print(f"{path.relative_to(ROOT.parent)}: {len(lines)} unsafe outside "
                  f"src/sys/ and src/process/ ({shown})")
            bad["unsafe"] += len(lines)
    print("unsafe outside tests: " + ", ".join(f"{f} {n}" for f, n in sorted(unsafe.items())))
    # Circles: strongly connected components with more than one module.
    for comp in strong_components(modules, edges):
        if len(comp) > 1:
            print("import circle: " + " <-> ".join(sorted(comp)))
            bad["import circle"] += 1
    # The same between folders, with the module imports that make each.
    folders = {folder_of(p) for p in modules.values()}
    between = {f: set() for f in folders}
    through = {}
    for a, targets in edges.items():
        for b in targets:
            fa, fb = folder_of(modules[a]), folder_of(modules[b])
            if fa != fb:
                between[fa].add(fb)
                through.setdefault((fa, fb), []).append((a, b))
    for comp in strong_components(folders, between):
        if len(comp) > 1:
            print("folder circle: " + " <-> ".join(sorted(comp)))
            for fa in sorted(comp):
                for fb in sorted(between[fa] & set(comp)):
                    for a, b in sorted(through[(fa, fb)]):
                        print(f"  {a} -> {b}")
            bad["folder circle"] += 1
    if bad:
        said = [f"{n} unsafe outside src/sys/ and src/process/" if what == "unsafe"
                else f"{n} {what}{'' if n == 1 else 's'}" for what, n in bad.items()]
        print("layout not ok: " + ", ".join(said))
        return 1
    n_edges = sum(len(e) for e in edges.values())
    print(f"layout ok: {len(modules)} modules, {n_edges} imports, no circle between modules "
          f"or folders, no function over {MAX_FN_LINES} lines, clap only in {sorted(CLAP_ALLOWED)}, "
          f"unsafe only in src/sys/ and src/process/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
