"""A YAML safe loader with limits: document size, node count and alias expansion.

Aliases let a small file describe a huge value (the "billion laughs": nine levels of anchors, each
listing the previous one ten times, expand to 10^9 items). The parsed graph shares its nodes, but
anything that walks it (validation, writing ``config.yml``) pays for the expansion. The loader
counts, after composing a document and before constructing any Python object, how many nodes the
document has once every alias is expanded, and refuses it beyond :data:`MAX_EXPANDED_NODES`.
"""
from __future__ import annotations

import yaml

MAX_DOCUMENT_BYTES = 1 << 20  #: 1 MiB: far above any hyperparameter file
MAX_EXPANDED_NODES = 100_000  #: nodes of a document with its aliases expanded
MAX_ALIASES = 1_000  #: alias references in one document


class YAMLLimitError(yaml.YAMLError):
    """A YAML document over the size, node or alias limits (the message says which)."""


class BoundedSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses documents over the limits of this module."""

    def __init__(self, stream: str | bytes) -> None:
        if len(stream) > MAX_DOCUMENT_BYTES:
            raise YAMLLimitError(f"document of {len(stream)} bytes is over the limit of {MAX_DOCUMENT_BYTES} bytes")
        super().__init__(stream)
        self._aliases = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        """Count alias references while composing."""
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise YAMLLimitError(f"more than {MAX_ALIASES} aliases (*name) in one document")
        return super().compose_node(parent, index)

    def compose_document(self) -> yaml.Node | None:
        """Compose, then check the size of the document with its aliases expanded."""
        node = super().compose_document()
        if node is not None:
            expanded_size(node, MAX_EXPANDED_NODES)
        return node


def expanded_size(root: yaml.Node, limit: int) -> int:
    """Number of nodes of ``root`` with aliases expanded; :class:`YAMLLimitError` beyond ``limit`` or on a cycle."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise YAMLLimitError("recursive alias (an anchor that contains itself)")
        total = 1
        if isinstance(node, (yaml.SequenceNode, yaml.MappingNode)):
            active.add(key)
            children = node.value if isinstance(node, yaml.SequenceNode) else [n for pair in node.value for n in pair]
            for child in children:
                total += size(child)
                if total > limit:
                    raise YAMLLimitError(f"aliases expand the document to more than {limit} nodes")
            active.discard(key)
        sizes[key] = total
        return total

    return size(root)
