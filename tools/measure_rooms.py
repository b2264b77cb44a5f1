#!/usr/bin/env python3
"""Rooms, arrows and circles inside a package (issue #27): the numbers of docs/ARCHITECTURE.md.

A *room* is a subpackage of the package or one of its modules lying directly in it; an *arrow* is "some module
of room A imports some module of room B" (A ≠ B, imports inside functions count, as for import-linter); a
*circle* is a strongly connected group of two or more rooms. Needs grimp (installed with import-linter).

Example:
    PYTHONPATH=src python tools/measure_rooms.py eacfer.infer
"""

from __future__ import annotations

import sys


def rooms_arrows_circles(package: str) -> tuple[list[str], set[tuple[str, str]], list[list[str]]]:
    """(rooms, arrows, circles) of ``package``."""
    import grimp

    graph = grimp.build_graph(package.split(".")[0], cache_dir=None)
    depth = package.count(".") + 1

    def room(module: str) -> str | None:
        parts = module.split(".")
        return parts[depth] if module.startswith(package + ".") else None

    rooms = sorted({r for m in graph.modules if (r := room(m)) and r != "__init__"})
    arrows = set()
    for m in graph.modules:
        a = room(m)
        if a is None:
            continue
        for d in graph.find_modules_directly_imported_by(m):
            b = room(d)
            if b is not None and b != a:
                arrows.add((a, b))
    return rooms, arrows, strongly_connected(rooms, arrows)


def strongly_connected(nodes: list[str], edges: set[tuple[str, str]]) -> list[list[str]]:
    """Groups of two or more nodes that reach each other (Tarjan's algorithm)."""
    succ = {n: sorted(b for a, b in edges if a == n) for n in nodes}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in succ[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for n in nodes:
        if n not in index:
            visit(n)
    return out


def main(argv: list[str]) -> int:
    package = argv[1] if len(argv) > 1 else "eacfer.infer"
    rooms, arrows, circles = rooms_arrows_circles(package)
    print(f"{package}: {len(rooms)} rooms, {len(arrows)} arrows, {len(circles)} circles")
    print("rooms:", " ".join(rooms))
    for a, b in sorted(arrows):
        print(f"  {a} -> {b}")
    for c in circles:
        print("circle:", " ".join(c))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
