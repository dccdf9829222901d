"""Turn a TOPOLOGY argument into a Fabric: a net file, or the name of a built-in preset."""

from __future__ import annotations

from pathlib import Path

from ibmig.errors import ConfigError
from ibmig.fabric.generators import PRESETS, preset
from ibmig.fabric.model import Fabric
from ibmig.fabric.netfile import read_net


def load_topology(spec: str) -> Fabric:
    """`spec` is a path to an ibnetdiscover/ibsim net file or a preset name
    (`ft2-36`, ..., `ft3-11664`); a `.net` suffix on a preset name is ignored when
    no such file exists."""
    path = Path(spec)
    if path.exists():
        if path.is_dir():
            raise ConfigError("is a directory, not a topology file", spec)
        return read_net(path)
    name = path.name.removesuffix(".net")
    if name in PRESETS:
        return preset(name)
    known = ", ".join(sorted(PRESETS))
    raise ConfigError(f"no such file, and not a built-in topology ({known})", spec)


def find_node(fabric: Fabric, text: str) -> int:
    """A node by name, NodeDescription, node GUID or port GUID (0x...)."""
    for node in fabric.nodes:
        if text in (node.name, node.description):
            return node.index
    try:
        guid = int(text, 0)
    except ValueError:
        raise ConfigError(f"no node named {text!r}", "topology") from None
    for node in fabric.nodes:
        if node.node_guid == guid:
            return node.index
    try:
        return fabric.port_by_guid(guid).node_index
    except (KeyError, ConfigError):
        raise ConfigError(f"no node or port with GUID {text}", "topology") from None
