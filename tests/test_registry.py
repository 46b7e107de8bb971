from __future__ import annotations

import pytest

import flowgraph
from flowgraph import Node, RegistryError, all_node_types, node_type, resolve


def test_builtin_types_arrive_through_the_entry_point():
    types = all_node_types()
    assert {"source", "input", "map", "batch", "unbatch", "tee", "collect", "discard"} <= set(types)


def test_module_colon_class_names_a_users_own_node():
    cls = resolve("fixture_nodes:Slow")
    assert issubclass(cls, Node) and cls.__name__ == "Slow"


def test_unknown_name_suggests_close_ones():
    with pytest.raises(RegistryError, match="did you mean 'collect'"):
        resolve("colect")


def test_registering_a_second_class_under_a_taken_name_is_an_error():
    with pytest.raises(RegistryError, match="registered twice"):

        @node_type("map")
        class Other(Node):
            pass


def test_engine_core_never_imports_a_node_module():
    """Only the CLI shell may reach into flowgraph.nodes (lazily, for its data/model/accuracy commands)."""
    import ast
    import pathlib

    for path in pathlib.Path(flowgraph.__file__).parent.glob("*.py"):
        if path.name == "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [f"{'.' * node.level}{node.module or ''}"]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            assert not any(n.startswith(("flowgraph.nodes", ".nodes")) for n in names), (path, names)


def test_public_names_are_all_exported():
    public = {n for n in dir(flowgraph) if not n.startswith("_")} - {"annotations"}
    modules = {n for n in public if type(getattr(flowgraph, n)).__name__ == "module"}
    assert public - modules == set(flowgraph.__all__)
