"""The package's layout is its architecture: an AST walk over keras_norm/ checks who may import whom.

* engine/ is the bottom layer: it imports nothing of the package but the leaf utilities (the error type,
  the quiet TensorFlow import);
* the studies and the benchmark are imported only by the command line (app.py, cli.py) and by themselves;
  the report draws what any suite wrote and imports no study;
* there is no import cycle between modules, nor between folders (engine/, bench/, studies/, report/, each as
  one unit) and the top-level modules.
"""

import ast
import os
import unittest

from tests.helpers import ROOT

PACKAGE = os.path.join(ROOT, "keras_norm")
LEAVES = {"keras_norm.errors", "keras_norm.quiet"}
ENTRY = {"keras_norm.app", "keras_norm.cli"}


def module_name(path):
    rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
    return rel[: -len(".__init__")] if rel.endswith(".__init__") else rel


def modules():
    """{module name: its source path} for every module of the package."""
    out = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                out[module_name(path)] = path
    return out


def imports(path, known):
    """The package's modules that the module at `path` imports (at the top or inside a function)."""
    found = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("keras_norm")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("keras_norm"):
            for alias in node.names:  # `from keras_norm.x import y`: y is a module, or a name in x
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else node.module)
    return found


def graph():
    known = modules()
    return {name: imports(path, known) - {name} for name, path in known.items()}


def unit(name):
    """The folder a module belongs to (keras_norm.engine, ...), or the top-level module itself."""
    parts = name.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or os.path.isdir(os.path.join(PACKAGE, *parts[1:])) else name


def cycles(edges):
    """The strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


class LayoutTest(unittest.TestCase):
    def setUp(self):
        self.graph = graph()

    def test_the_engine_is_the_bottom_layer(self):
        for name, deps in self.graph.items():
            if unit(name) == "keras_norm.engine":
                outside = {d for d in deps if unit(d) != "keras_norm.engine"} - LEAVES
                self.assertEqual(outside, set(), f"{name} imports {outside}")

    def test_studies_and_the_benchmark_are_imported_only_from_the_command_line(self):
        for room in ("keras_norm.studies", "keras_norm.bench"):
            users = {name for name, deps in self.graph.items() if unit(name) != room
                     and any(unit(d) == room for d in deps)}
            self.assertLessEqual(users, ENTRY, room)

    def test_no_cycle_between_modules_or_folders(self):
        self.assertEqual(cycles(self.graph), [])
        folders = {}
        for name, deps in self.graph.items():
            folders.setdefault(unit(name), set()).update(unit(d) for d in deps if unit(d) != unit(name))
        self.assertEqual(cycles(folders), [])

    def test_the_checks_see_a_cycle_and_a_forbidden_import(self):
        # The walk itself: a planted cycle is found, and the real graph has the edges the rules are about.
        self.assertEqual(cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}), [["a", "b", "c"]])
        self.assertIn("keras_norm.engine", self.graph["keras_norm.train"])
        self.assertIn("keras_norm.studies", self.graph["keras_norm.app"])
        self.assertEqual(unit("keras_norm.engine.native"), "keras_norm.engine")
        self.assertEqual(unit("keras_norm.engine"), "keras_norm.engine")
        self.assertEqual(unit("keras_norm.train"), "keras_norm.train")


if __name__ == "__main__":
    unittest.main()
