"""A YAML loader that refuses a key given twice in one mapping, naming the key and both lines.

YAML itself lets the last of two equal keys win without a word.  In config.yml
that turns a natural mistake, pasting a snippet that starts with `modules:` at
the end of the file, into a bridge whose other modules have silently vanished.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode


class DuplicateKey(yaml.YAMLError):
    """A key given twice in one mapping; its message names the key and both lines."""


class UniqueKeyLoader(yaml.SafeLoader):
    """`yaml.safe_load`, except that a mapping with a key given twice raises DuplicateKey (a YAMLError)."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults`: keys given here override those
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                seen = first_line.get(key)
            except TypeError:  # an unhashable key: SafeLoader's own check says so
                break
            if seen is not None:
                raise DuplicateKey(f"{key!r} is given twice, on line {seen} and on line {line}: write it once, "
                                   "with everything under it")
            first_line[key] = line
        return super().construct_mapping(node, deep=deep)


def load_unique(text: str) -> Any:
    """The YAML document in `text`, as `yaml.safe_load` reads it, refusing keys given twice."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
