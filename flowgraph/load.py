"""YAML → GraphSpec, keeping the line of every key so that later errors can point into the file.

Order of application, lowest priority first: the file's ``params``, a scenario's ``params``, the caller's
overrides (``--set``). Then ``${name}`` references are substituted, scenario bypasses are spliced out,
and the result is checked by the pydantic models in ``spec``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .errors import GraphFileError, Issue, did_you_mean
from .spec import EdgeSpec, GraphSpec

__all__ = ["LoadedGraph", "SourceMap", "load_graph", "load_graph_text", "parse_override", "read_text_file"]

_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.\-]*)\}")
Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class SourceMap:
    """Where each key of the graph file was written, so messages can say file:line."""

    file: str
    lines: dict[Path_, int] = field(default_factory=dict)
    elsewhere: dict[str, SourceMap] = field(default_factory=dict)
    """Top-level keys written in another file (an ``extends`` child's ``shards``), by key."""

    def line_of(self, *path: str | int) -> int | None:
        """The line of the deepest written key along ``path`` (a node's line when its param was defaulted)."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None

    def issue(self, path: Path_, message: str, *, node: str | None = None, fix: str | None = None) -> Issue:
        other = self.elsewhere.get(str(path[0])) if path else None
        if other is not None:
            return other.issue(path, message, node=node, fix=fix)
        return Issue(self.file, self.line_of(*path), node, message, fix)


@dataclass(frozen=True)
class LoadedGraph:
    """A parsed graph and where it came from."""

    spec: GraphSpec
    source: SourceMap
    scenario: str | None = None


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` from the command line; the value is read as a YAML scalar (``2`` is an int)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise GraphFileError([Issue("--set", None, None, f"expected KEY=VALUE, got {text!r}")])
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def load_graph(
    path: str | Path,
    overrides: Mapping[str, Any] | None = None,
    scenario: str | None = None,
) -> LoadedGraph:
    """Read a graph file; raise ``GraphFileError`` naming file, line and key on any problem."""
    return load_graph_text(read_text_file(Path(path), "graph file"), str(path), overrides, scenario)


def read_text_file(path: Path, what: str) -> str:
    """A UTF-8 text file's text, or ``GraphFileError`` naming the file (and the line of a bad byte)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise GraphFileError(
            [Issue(str(path), None, None, f"cannot read {what}: {exc.strerror or exc}")]
        ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        bad = f"not UTF-8 text (byte {data[exc.start]:#04x})"
        raise GraphFileError([Issue(str(path), line, None, bad, "save it as UTF-8")]) from None


def load_graph_text(
    text: str,
    file: str = "<graph>",
    overrides: Mapping[str, Any] | None = None,
    scenario: str | None = None,
) -> LoadedGraph:
    """Like ``load_graph`` for YAML held in memory (``file`` only names it in messages)."""
    raw, lines = _parse_yaml(text, file)
    source = SourceMap(file, lines)
    if not isinstance(raw, dict):
        raise GraphFileError([source.issue((), "a graph file must be a mapping with 'nodes' and 'edges'")])
    if "extends" in raw:
        raw, source = _extend(raw, source, [file])
    raw.setdefault("params", {})
    if not isinstance(raw["params"], dict):
        raise GraphFileError([source.issue(("params",), "'params' must be a mapping of name: value")])
    if scenario is not None:
        _apply_scenario_params(raw, scenario, source)
    for key, value in (overrides or {}).items():
        _apply_override(raw, key, value, source)
    issues: list[Issue] = []
    for section in ("nodes", "edges"):
        if section in raw:
            raw[section] = _substitute(raw[section], raw["params"], (section,), source, issues)
    if issues:
        raise GraphFileError(issues)
    try:
        spec = GraphSpec.model_validate(raw)
    except ValidationError as exc:
        raise GraphFileError([_pydantic_issue(err, source, raw) for err in exc.errors()]) from None
    if scenario is not None:
        spec = _bypass(spec, scenario, source)
    return LoadedGraph(spec, source, scenario)


def _extend(
    child: dict[str, Any], child_source: SourceMap, chain: list[str]
) -> tuple[dict[str, Any], SourceMap]:
    """``extends: base.yaml``: the base graph with the child's name, description, params and shards on top.

    A child may change only those, so one graph serves several scenario files without copies;
    line numbers of nodes and edges point into the base file, where they are written."""
    base_name = child.pop("extends")
    allowed = {"name", "description", "params", "shards"}
    extra = set(child) - allowed
    if extra or not isinstance(base_name, str):
        raise GraphFileError(
            [
                child_source.issue(
                    (sorted(extra)[0],) if extra else ("extends",),
                    "a graph that extends another sets only name, description, params and shards",
                    fix="put nodes, edges and scenarios in the base file",
                )
            ]
        )
    base_path = Path(child_source.file).parent / base_name
    if any(_same_file(base_path, seen) for seen in chain):
        loop = " -> ".join([*chain, str(base_path)])
        raise GraphFileError(
            [child_source.issue(("extends",), f"extends goes round in a circle: {loop}", fix="remove one")]
        )
    try:
        text = base_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GraphFileError(
            [child_source.issue(("extends",), f"cannot read base graph {base_path}: {exc.strerror}")]
        ) from None
    raw, lines = _parse_yaml(text, str(base_path))
    if not isinstance(raw, dict):
        raise GraphFileError([Issue(str(base_path), None, None, "the base graph must be a mapping")])
    if "extends" in raw:
        raw, source = _extend(raw, SourceMap(str(base_path), lines), [*chain, str(base_path)])
    else:
        source = SourceMap(str(base_path), lines)
    params = raw.setdefault("params", {})
    for key, value in (child.get("params") or {}).items():
        if isinstance(value, dict) and isinstance(params.get(key), dict):
            params[key] = {**params[key], **value}
        else:
            params[key] = value
    for key in ("name", "description", "shards"):
        if key in child:
            raw[key] = child[key]
    if "shards" in child:  # its messages point at the child, where it is written
        source = SourceMap(source.file, source.lines, {**source.elsewhere, "shards": child_source})
    return raw, source


def _same_file(a: Path, b: str) -> bool:
    try:
        return a.resolve() == Path(b).resolve()
    except OSError:
        return False


# --- YAML with line numbers -------------------------------------------------------------------------


MAX_VALUES = 100_000
"""Values a graph file may expand to (aliases included): far above any real graph, far below what a
file of nested aliases ("billion laughs") would expand to before it exhausted memory."""
MAX_DEPTH = 64
"""Nesting a graph file may have; deeper is refused with a message, not Python's RecursionError."""


def _parse_yaml(text: str, file: str) -> tuple[Any, dict[Path_, int]]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise GraphFileError(
            [Issue(file, None, None, "the YAML is nested too deeply (a graph needs a few levels)")]
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = exc.problem or str(exc)
        raise GraphFileError([Issue(file, line, None, f"YAML syntax error: {what}")]) from None
    if root is None:
        raise GraphFileError([Issue(file, None, None, "the graph file is empty")])
    lines: dict[Path_, int] = {}
    constructor = yaml.SafeLoader("")
    return _to_python(root, (), lines, constructor, file, [0]), lines


def _to_python(
    node: yaml.Node, path: Path_, lines: dict[Path_, int], ctor: yaml.SafeLoader, file: str, seen: list[int]
) -> Any:
    seen[0] += 1
    if seen[0] > MAX_VALUES or len(path) > MAX_DEPTH:
        too = "many values" if seen[0] > MAX_VALUES else "deep nesting"
        raise GraphFileError(
            [
                Issue(
                    file,
                    node.start_mark.line + 1,
                    None,
                    f"the YAML expands to too {too} (over {MAX_VALUES:,} values or {MAX_DEPTH} levels): "
                    "aliases of aliases, or a file that is not a graph",
                    "write the graph out without nested aliases",
                )
            ]
        )
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise GraphFileError(
                    [Issue(file, key_node.start_mark.line + 1, None, "a key must be a plain value", None)]
                )
            key = ctor.construct_object(key_node, deep=True)
            if key in out:
                raise GraphFileError(
                    [
                        Issue(
                            file,
                            key_node.start_mark.line + 1,
                            None,
                            f"duplicate key {key!r}",
                            "keep one of them",
                        )
                    ]
                )
            lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _to_python(value_node, (*path, key), lines, ctor, file, seen)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, (*path, i), lines, ctor, file, seen) for i, item in enumerate(node.value)]
    return ctor.construct_object(node, deep=True)


# --- parameters, overrides, scenarios ----------------------------------------------------------------


def _lookup(params: Mapping[str, Any], dotted: str) -> tuple[bool, Any]:
    if dotted in params:
        return True, params[dotted]
    current: Any = params
    for part in dotted.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return False, None
        current = current[part]
    return True, current


def _flat_names(params: Mapping[str, Any], prefix: str = "") -> list[str]:
    names = []
    for key, value in params.items():
        names.append(prefix + str(key))
        if isinstance(value, Mapping):
            names.extend(_flat_names(value, f"{prefix}{key}."))
    return names


def _substitute(
    value: Any, params: Mapping[str, Any], path: Path_, source: SourceMap, issues: list[Issue]
) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, params, (*path, k), source, issues) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, params, (*path, i), source, issues) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def resolve(name: str) -> Any:
        found, result = _lookup(params, name)
        if not found:
            hint = did_you_mean(name, _flat_names(params), n=3) or "declare it under the file's 'params:'"
            node = str(path[1]) if len(path) > 1 and path[0] == "nodes" else None
            issues.append(source.issue(path, f"unknown graph parameter ${{{name}}}", node=node, fix=hint))
        return result

    whole = _REF.fullmatch(value)
    if whole:  # a lone reference keeps the parameter's type (int stays int)
        return resolve(whole.group(1))
    return _REF.sub(lambda m: str(resolve(m.group(1))), value)


def _set_dotted(target: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        child = target.get(part)
        if not isinstance(child, dict):
            child = target[part] = {}
        target = child
    target[leaf] = value


def _apply_override(raw: dict[str, Any], key: str, value: Any, source: SourceMap) -> None:
    params = raw["params"]
    head, _, rest = key.partition(".")
    if head == "shards" and "shards" not in params:  # the graph's shards: section (shards.devices=[0,1])
        shards = raw.get("shards")
        if not isinstance(shards, dict):
            shards = raw["shards"] = {}
        if rest:
            _set_dotted(shards, rest, value)
        else:
            raw["shards"] = value
        return
    if _lookup(params, key)[0] or head in params:
        if key in params:
            params[key] = value
        else:
            _set_dotted(params, key, value)
        return
    nodes = raw.get("nodes")
    if isinstance(nodes, dict) and head in nodes and rest and isinstance(nodes[head], dict):
        node = nodes[head]
        if rest in ("workers", "on_error", "type"):
            node[rest] = value
        else:
            node.setdefault("params", {})
            _set_dotted(node["params"], rest, value)
        return
    choices = _flat_names(params) + [f"{n}.<param>" for n in (nodes or {})]
    fix = did_you_mean(key, choices, n=3) or f"known parameters: {', '.join(_flat_names(params)) or 'none'}"
    raise GraphFileError(
        [Issue(source.file, None, None, f"--set {key}: no graph parameter or node named {head!r}", fix)]
    )


def _apply_scenario_params(raw: dict[str, Any], scenario: str, source: SourceMap) -> None:
    scenarios = raw.get("scenarios") or {}
    if scenario not in scenarios:
        return  # a scenario the file does not specialise runs the graph as written
    scenario_params = (scenarios[scenario] or {}).get("params") or {}
    for key, value in scenario_params.items():
        _set_dotted(raw["params"], key, copy.deepcopy(value)) if "." in key else raw["params"].__setitem__(
            key, value
        )


def _bypass(spec: GraphSpec, scenario: str, source: SourceMap) -> GraphSpec:
    """Splice out the scenario's bypassed nodes: each must have one edge in and one edge out."""
    scenario_spec = spec.scenarios.get(scenario)
    if scenario_spec is None or not scenario_spec.bypass:
        return spec
    edges = list(spec.edges)
    nodes = dict(spec.nodes)
    for name in scenario_spec.bypass:
        path = ("scenarios", scenario, "bypass")
        if name not in nodes:
            raise GraphFileError([source.issue(path, f"scenario {scenario} bypasses unknown node {name!r}")])
        into = [e for e in edges if e.target.node == name]
        out_of = [e for e in edges if e.source.node == name]
        if len(into) != 1 or len(out_of) != 1:
            raise GraphFileError(
                [
                    source.issue(
                        path,
                        f"scenario {scenario} bypasses {name!r}, which needs exactly one edge in and one out",
                        node=name,
                        fix="bypass only pass-through stages such as batch_merge / batch_split",
                    )
                ]
            )
        spliced = EdgeSpec.model_validate(
            {
                "from": into[0].source,
                "to": out_of[0].target,
                "capacity": max(into[0].capacity, out_of[0].capacity),
            }
        )
        edges = [e for e in edges if e not in (into[0], out_of[0])] + [spliced]
        del nodes[name]
    return spec.model_copy(update={"nodes": nodes, "edges": edges})


def _pydantic_issue(err: Any, source: SourceMap, raw: Mapping[str, Any]) -> Issue:
    loc = tuple(err.get("loc", ()))
    node = str(loc[1]) if len(loc) > 1 and loc[0] == "nodes" else None
    key = ".".join(str(p) for p in loc) or "<file>"
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        parent = loc[:-1]
        allowed = _allowed_keys(parent)
        fix = did_you_mean(str(loc[-1]), allowed) or (
            f"allowed keys: {', '.join(allowed)}" if allowed else None
        )
        return source.issue(loc, f"unknown key {key!r}", node=node, fix=fix)
    if kind == "missing":
        return source.issue(loc[:-1], f"missing required key {key!r}", node=node)
    return source.issue(loc, f"{key}: {err.get('msg')} (got {err.get('input')!r})", node=node)


def _allowed_keys(parent: tuple[Any, ...]) -> list[str]:
    from .spec import NodeSpec, ScenarioSpec

    model: Any = None
    if parent == ():
        model = GraphSpec
    elif len(parent) == 2 and parent[0] == "nodes":
        model = NodeSpec
    elif len(parent) == 2 and parent[0] == "edges":
        return ["from", "to", "capacity"]
    elif len(parent) == 2 and parent[0] == "scenarios":
        model = ScenarioSpec
    return list(model.model_fields) if model else []
