"""The library's shape: one direction of dependency among its modules (counting imports inside
functions), short functions, a short sampler loop."""
import ast
from pathlib import Path

import cag_lib

PKG = Path(cag_lib.__file__).parent


def module_imports() -> dict[str, set[str]]:
    """{module: the cag_lib modules it imports anywhere in its file}."""
    graph = {}
    for path in PKG.glob("*.py"):
        name = path.stem
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    deps.add(node.module.split(".")[0])
                else:
                    deps.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cag_lib."):
                deps.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                deps.update(a.name.split(".")[1] for a in node.names if a.name.startswith("cag_lib."))
        graph[name] = deps - {name, "__init__"}
    return graph


def find_cycle(graph: dict) -> list | None:
    state, stack = {}, []

    def visit(n):
        state[n] = "open"
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == "open":
                return stack[stack.index(m):] + [m]
            if m not in state and (c := visit(m)):
                return c
        state[n] = "done"
        stack.pop()
    for n in sorted(graph):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_no_import_cycle_among_the_modules():
    assert find_cycle(module_imports()) is None, " -> ".join(find_cycle(module_imports()))


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def function_lengths():
    for path in sorted(PKG.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield f"{path.name}:{node.lineno} {node.name}", node.end_lineno - node.lineno + 1


def test_no_function_over_60_lines_and_the_loop_at_most_40():
    lengths = dict(function_lengths())
    assert [k for k, n in lengths.items() if n > 60] == []
    assert max(n for k, n in lengths.items() if k.startswith("generate.py") and k.endswith(" generate")) <= 40
