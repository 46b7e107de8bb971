"""flowgraph: an asyncio dataflow-graph engine for ML inference pipelines, configured as a DAG in YAML.

The public API is re-exported here by name; modules are implementation and may move.
"""

from __future__ import annotations

from .errors import (
    DependencyMissing,
    FlowgraphError,
    GraphFileError,
    GraphStopped,
    GraphValidationError,
    Issue,
    NodeFailure,
    NodeTimeout,
    RegistryError,
    SampleError,
)
from .feeds import Feed
from .graph import Graph, Run, run_event_loop
from .load import LoadedGraph, load_graph, load_graph_text
from .metrics import Failure
from .node import (
    END,
    SKIP,
    Follows,
    Needs,
    Node,
    NodeContext,
    NoParams,
    Port,
    SampleFailed,
    Source,
    WorkerIO,
    WorkerRule,
    sample_count,
    sample_of,
)
from .ports import Inbox, Outbox
from .registry import all_node_types, node_type, resolve
from .report import Report
from .spec import GraphSpec
from .trust import UntrustedCode, allow_modules
from .validate import CheckedGraph, validate

__version__ = "0.1.0"

__all__ = [
    "END",
    "SKIP",
    "CheckedGraph",
    "DependencyMissing",
    "Failure",
    "Feed",
    "FlowgraphError",
    "Follows",
    "Graph",
    "Inbox",
    "GraphFileError",
    "GraphSpec",
    "GraphStopped",
    "GraphValidationError",
    "Issue",
    "LoadedGraph",
    "Needs",
    "NoParams",
    "Node",
    "NodeContext",
    "NodeFailure",
    "NodeTimeout",
    "Outbox",
    "Port",
    "RegistryError",
    "Report",
    "SampleError",
    "SampleFailed",
    "UntrustedCode",
    "Run",
    "Source",
    "WorkerIO",
    "WorkerRule",
    "all_node_types",
    "allow_modules",
    "load_graph",
    "load_graph_text",
    "node_type",
    "resolve",
    "run_event_loop",
    "sample_count",
    "sample_of",
    "validate",
]
