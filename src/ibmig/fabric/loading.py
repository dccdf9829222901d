"""Turn a TOPOLOGY argument into a Fabric: a net file, or the name of a built-in preset."""

from __future__ import annotations

from pathlib import Path

from ibmig.errors import ConfigError
from ibmig.fabric.generators import PRESETS, preset
from ibmig.fabric.model import Fabric
from ibmig.fabric.netfile import read_net


def load_topology(spec: str) -> Fabric:
    """`spec` is a path to an ibnetdiscover/ibsim net file or a preset name
    (`ft2-36`, ..., `ft3-11664`). A spec that looks like a path (it contains a `/`
    or ends in `.net`) must name an existing file: it never falls back to the preset
    of the same name, which would silently bring up another fabric than the one
    asked for."""
    path = Path(spec)
    if path.exists():
        if path.is_dir():
            raise ConfigError("is a directory, not a topology file", spec)
        return read_net(path)
    if looks_like_path(spec):
        name = path.name.removesuffix(".net")
        hint = (
            f" (the built-in topology is named {name!r}, without .net)" if name in PRESETS else ""
        )
        raise ConfigError(f"no such file{hint}", spec)
    if spec in PRESETS:
        return preset(spec)
    known = ", ".join(sorted(PRESETS))
    raise ConfigError(f"no such file, and not a built-in topology ({known})", spec)


def looks_like_path(spec: str) -> bool:
    """Whether a TOPOLOGY argument names a file rather than a built-in preset."""
    return "/" in spec or spec.endswith(".net")


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
