"""Cut a graph at the QSL: a pure spec → spec function, nothing runs here.

The graph file names its split in ``params.loadgen``: ``qsl`` lists the nodes that load a sample into
memory (init, preprocess), ``complete_after`` the node whose predictions answer queries. The front (the
QSL part) ends in a collector; the back (the SUT) starts at an ``input`` node where the front was and
ends in a ``loadgen_complete`` sink after ``complete_after``.
"""

from __future__ import annotations

from dataclasses import dataclass

from flowgraph import GraphFileError, LoadedGraph
from flowgraph.shards.plan import cut_at_edge
from flowgraph.spec import EdgeSpec, NodeSpec, PortRef

__all__ = ["COMPLETE", "ISSUE", "QSL_OUT", "LoadgenSplit", "split_for_loadgen"]

ISSUE, COMPLETE, QSL_OUT = "loadgen_issue", "loadgen_complete", "qsl_collect"


@dataclass(frozen=True)
class LoadgenSplit:
    """The two halves of a graph cut for LoadGen, and where it was cut."""

    front: LoadedGraph
    """The QSL: loads samples, ends in ``qsl_collect``."""
    back: LoadedGraph
    """The SUT: fed by ``loadgen_issue``, answers through ``loadgen_complete``."""
    first_sut_node: str
    """The node the cut edge fed: where queries enter the SUT."""
    source: str
    """The front's source node (the dataset), whose ``indices`` param picks the samples to load."""


def split_for_loadgen(loaded: LoadedGraph) -> LoadgenSplit:
    """(front, back, first SUT node): the QSL part ending in a collector, and the SUT part fed by an
    input node and ending in ``loadgen_complete``."""
    spec, src = loaded.spec, loaded.source
    config = spec.params.get("loadgen") or {}
    qsl = set(config.get("qsl") or [])
    after = config.get("complete_after")
    problems = [n for n in qsl | {after} if n not in spec.nodes]
    if not qsl or not after or problems:
        raise GraphFileError(
            [
                src.issue(
                    ("params", "loadgen"),
                    "LoadGen needs params.loadgen with 'qsl' (nodes that load a sample) and "
                    "'complete_after' (the node whose predictions answer queries)"
                    + (f"; unknown nodes: {problems}" if problems else ""),
                    fix="e.g. loadgen: {qsl: [init, preprocess], complete_after: postprocess}",
                )
            ]
        )
    crossing = [e for e in spec.edges if e.source.node in qsl and e.target.node not in qsl]
    if len(crossing) != 1 or any(e.target.node in qsl and e.source.node not in qsl for e in spec.edges):
        raise GraphFileError(
            [
                src.issue(
                    ("params", "loadgen", "qsl"),
                    f"the qsl nodes must feed the rest through exactly one edge (found {len(crossing)})",
                )
            ]
        )
    cut = crossing[0]
    (front_nodes, front_edges), (back_nodes, back_edges) = cut_at_edge(spec, qsl, cut, QSL_OUT, ISSUE)
    back_nodes[COMPLETE] = NodeSpec.model_validate({"type": "loadgen_complete"})
    back_edges.append(
        EdgeSpec.model_validate({"from": PortRef(node=after), "to": PortRef(node=COMPLETE), "capacity": 1024})
    )
    # each half runs in one process (a sharded graph's shards each run both): neither is sharded itself
    front = spec.model_copy(
        update={"nodes": front_nodes, "edges": front_edges, "name": f"{spec.name}-qsl", "shards": None}
    )
    back = spec.model_copy(update={"nodes": back_nodes, "edges": back_edges, "shards": None})
    source = next(n for n in front_nodes if not any(e.target.node == n for e in front_edges))
    return LoadgenSplit(
        LoadedGraph(front, src, loaded.scenario),
        LoadedGraph(back, src, loaded.scenario),
        cut.target.node,
        source,
    )
