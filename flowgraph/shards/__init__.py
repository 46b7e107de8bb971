"""A graph run as identical shards, one process each (or one Ray actor each), fed sample indices.

Parts, one job each: ``plan`` (the validator's rules, the cut, the devices), ``transport`` (framed
messages between the parent and a shard), ``service`` (what a shard does with them), ``worker`` (the
shard process), ``pool`` (the parent's side: start, dispatch by credit, fail fast, clean up),
``ray_pool`` (the same over Ray actors), ``run`` (a plain ``flowgraph run`` of a sharded graph).
"""
