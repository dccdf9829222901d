"""Deterministic topology generators: fat trees, k-ary n-trees, irregular graphs.

Nodes are added switches first (lowest level first), then hosts, and GUIDs
come from ibsim's counters in that order, so `format_net(generator(...))`
loaded into ibsim names the same GUIDs. Every host is a one-port channel
adapter; every switch declares `switch_ports` ports (36 by default, a QDR/EDR
switch ASIC) and uses the lowest port numbers: hosts first, then links down,
then links up.

Fat trees are wired like the files in ../shared/topologies (the tests check
that these generators rebuild them exactly):

2 levels, `fat_tree_2level(leaves, hosts_per_leaf, spines, links)`:
  leaf i port h+1 -- host "h{i}_{h}" port 1;
  leaf i port hosts_per_leaf + s*links + l + 1 -- spine s port i*links + l + 1.

3 levels, `fat_tree_3level(pods, leaves_per_pod, hosts_per_leaf, mids_per_pod,
cores_per_group, links)`: core group g (cores "core{g}_{c}") serves mid g of
every pod:
  leaf (p, i) port h+1 -- host "h{p}_{i}_{h}" port 1;
  leaf (p, i) port hosts_per_leaf + m*lm + l + 1 -- mid (p, m) port i*lm + l + 1
      (lm = leaf_mid_links, 1 in the shared files);
  mid (p, m) port leaves_per_pod*lm + c*links + l + 1 -- core (m, c) port p*links + l + 1.

`fat_tree_3level(pods=36, leaves_per_pod=18, hosts_per_leaf=18, mids_per_pod=18,
cores_per_group=18)` is the 11,664-host, 1,620-switch tree (preset "ft3-11664");
the same with 40 pods of 32 x 32 x 32 and 32 cores per group on 64-port switches is
the 40,960-host, 3,584-switch tree (preset "ft3-40960").
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ibmig.errors import ConfigError
from ibmig.fabric.model import MAX_PORTS, Fabric, FabricBuilder, NodeType

__all__ = [
    "GENERATORS",
    "PRESETS",
    "TopologyGenerator",
    "fat_tree_2level",
    "fat_tree_3level",
    "kary_ntree",
    "preset",
    "random_topology",
]

DEFAULT_SWITCH_PORTS = 36


def _positive(where: str, value: int, low: int = 1) -> None:
    if value < low:
        raise ConfigError(f"must be at least {low}, got {value}", where)


def _fits(what: str, needed: int, switch_ports: int) -> None:
    if needed > switch_ports:
        raise ConfigError(
            f"{what} need {needed} ports but switches have {switch_ports}", "switch_ports"
        )


def _check_switch_ports(switch_ports: int) -> None:
    if not 1 <= switch_ports <= MAX_PORTS:
        raise ConfigError(f"must be 1..{MAX_PORTS}, got {switch_ports}", "switch_ports")


def fat_tree_2level(
    *,
    leaves: int,
    hosts_per_leaf: int,
    spines: int,
    links: int = 1,
    switch_ports: int = DEFAULT_SWITCH_PORTS,
) -> Fabric:
    """Leaves "leaf{i}", spines "spine{s}", hosts "h{i}_{h}"; `links` parallel
    cables between every leaf and every spine."""
    for name, value in (("leaves", leaves), ("spines", spines), ("links", links)):
        _positive(name, value)
    _positive("hosts_per_leaf", hosts_per_leaf, 0)
    _check_switch_ports(switch_ports)
    _fits("leaves", hosts_per_leaf + spines * links, switch_ports)
    _fits("spines", leaves * links, switch_ports)
    b = FabricBuilder()
    leaf = [b.add_node(NodeType.SWITCH, f"leaf{i}", switch_ports) for i in range(leaves)]
    spine = [b.add_node(NodeType.SWITCH, f"spine{s}", switch_ports) for s in range(spines)]
    for i in range(leaves):
        for h in range(hosts_per_leaf):
            host = b.add_node(NodeType.CA, f"h{i}_{h}", 1)
            b.connect(leaf[i], h + 1, host, 1)
        for s in range(spines):
            for k in range(links):
                b.connect(leaf[i], hosts_per_leaf + s * links + k + 1, spine[s], i * links + k + 1)
    return b.build()


def fat_tree_3level(
    *,
    pods: int,
    leaves_per_pod: int,
    hosts_per_leaf: int,
    mids_per_pod: int,
    cores_per_group: int,
    links: int = 1,
    leaf_mid_links: int = 1,
    switch_ports: int = DEFAULT_SWITCH_PORTS,
) -> Fabric:
    """Leaves "p{p}leaf{i}", mids "p{p}mid{m}", cores "core{g}_{c}" (group g
    serves mid g of every pod: mids_per_pod groups), hosts "h{p}_{i}_{h}";
    every leaf reaches every mid of its pod with `leaf_mid_links` cables,
    every mid reaches every core of its group with `links` cables."""
    for name, value in (
        ("pods", pods),
        ("leaves_per_pod", leaves_per_pod),
        ("mids_per_pod", mids_per_pod),
        ("cores_per_group", cores_per_group),
        ("links", links),
        ("leaf_mid_links", leaf_mid_links),
    ):
        _positive(name, value)
    _positive("hosts_per_leaf", hosts_per_leaf, 0)
    _check_switch_ports(switch_ports)
    lm = leaf_mid_links
    _fits("leaves", hosts_per_leaf + mids_per_pod * lm, switch_ports)
    _fits("mids", leaves_per_pod * lm + cores_per_group * links, switch_ports)
    _fits("cores", pods * links, switch_ports)
    b = FabricBuilder()
    leaf = [
        [b.add_node(NodeType.SWITCH, f"p{p}leaf{i}", switch_ports) for i in range(leaves_per_pod)]
        for p in range(pods)
    ]
    mid = [
        [b.add_node(NodeType.SWITCH, f"p{p}mid{m}", switch_ports) for m in range(mids_per_pod)]
        for p in range(pods)
    ]
    core = [
        [b.add_node(NodeType.SWITCH, f"core{g}_{c}", switch_ports) for c in range(cores_per_group)]
        for g in range(mids_per_pod)
    ]
    for p in range(pods):
        for i in range(leaves_per_pod):
            for h in range(hosts_per_leaf):
                host = b.add_node(NodeType.CA, f"h{p}_{i}_{h}", 1)
                b.connect(leaf[p][i], h + 1, host, 1)
            for m in range(mids_per_pod):
                for k in range(lm):
                    b.connect(
                        leaf[p][i], hosts_per_leaf + m * lm + k + 1, mid[p][m], i * lm + k + 1
                    )
        for m in range(mids_per_pod):
            for c in range(cores_per_group):
                for k in range(links):
                    b.connect(
                        mid[p][m],
                        leaves_per_pod * lm + c * links + k + 1,
                        core[m][c],
                        p * links + k + 1,
                    )
    return b.build()


def _digits(value: int, k: int, count: int) -> list[int]:
    out = []
    for _ in range(count):
        value, digit = divmod(value, k)
        out.append(digit)
    return out


def _number(digits: list[int], k: int) -> int:
    value = 0
    for digit in reversed(digits):
        value = value * k + digit
    return value


def kary_ntree(k: int, n: int, *, switch_ports: int | None = None) -> Fabric:
    """The k-ary n-tree (Petrini and Vanneschi): n levels of k**(n-1) switches
    with k ports down and k up, k**n hosts.

    Switch "s{level}_{w}" (level 0 = leaves, w = 0..k**(n-1)-1 read as n-1
    base-k digits) reaches, through up port k+1+j, the switch of level+1 whose
    digits equal w's except digit `level`, which is j; there it arrives on down
    port (digit `level` of w) + 1. Leaf w port d+1 holds host "h{w}_{d}".
    Top switches use only their k down ports. Switches declare `switch_ports`
    ports (default 2k).
    """
    _positive("k", k, 2)
    _positive("n", n)
    ports = 2 * k if switch_ports is None else switch_ports
    _check_switch_ports(ports)
    _fits("k-ary n-tree switches", k if n == 1 else 2 * k, ports)
    width = k ** (n - 1)
    b = FabricBuilder()
    level = [
        [b.add_node(NodeType.SWITCH, f"s{lv}_{w}", ports) for w in range(width)] for lv in range(n)
    ]
    for w in range(width):
        for d in range(k):
            host = b.add_node(NodeType.CA, f"h{w}_{d}", 1)
            b.connect(level[0][w], d + 1, host, 1)
    for lv in range(n - 1):
        for w in range(width):
            digits = _digits(w, k, n - 1)
            for j in range(k):
                upper = digits.copy()
                upper[lv] = j
                b.connect(level[lv][w], k + 1 + j, level[lv + 1][_number(upper, k)], digits[lv] + 1)
    return b.build()


def random_topology(
    num_switches: int,
    num_hosts: int,
    *,
    seed: int,
    max_degree: int = 8,
    num_links: int | None = None,
    switch_ports: int = DEFAULT_SWITCH_PORTS,
) -> Fabric:
    """A connected irregular switch graph, the same for the same arguments.

    With `rng = random.Random(seed)`: a random spanning tree (switches taken in
    a shuffled order, each cabled to a random earlier one with free degree),
    then random extra switch-to-switch cables up to `num_links` in all
    (default: num_switches - 1 + num_switches // 2), no switch with more than
    `max_degree` of them and no parallel cables. Hosts go round-robin over a
    shuffled switch order, on the lowest ports; switch links take the next
    ports. Switches "sw{i}", hosts "h{j}".
    """
    _positive("num_switches", num_switches)
    _positive("num_hosts", num_hosts, 0)
    _check_switch_ports(switch_ports)
    if num_switches > 2 and max_degree < 2:
        raise ConfigError(f"must be at least 2 to connect {num_switches} switches", "max_degree")
    tree_links = num_switches - 1
    wanted = tree_links + num_switches // 2 if num_links is None else num_links
    if wanted < tree_links:
        raise ConfigError(f"must be at least {tree_links} to connect the switches", "num_links")
    max_links = min(num_switches * (num_switches - 1) // 2, num_switches * max_degree // 2)
    if wanted > max_links:
        raise ConfigError(
            f"{wanted} links do not fit {num_switches} switches of degree {max_degree}",
            "num_links",
        )
    rng = random.Random(seed)
    degree = [0] * num_switches
    edges: list[tuple[int, int]] = []
    linked: set[tuple[int, int]] = set()

    def add(a: int, b: int) -> None:
        degree[a] += 1
        degree[b] += 1
        edges.append((a, b))
        linked.add((min(a, b), max(a, b)))

    order = list(range(num_switches))
    rng.shuffle(order)
    for i in range(1, num_switches):
        free = [s for s in order[:i] if degree[s] < max_degree]
        add(order[i], rng.choice(free))
    attempts = 0
    while len(edges) < wanted:
        free = [s for s in range(num_switches) if degree[s] < max_degree]
        if len(free) >= 2 and attempts < 64:
            a, b = rng.sample(free, 2)
            if (min(a, b), max(a, b)) in linked:
                attempts += 1
                continue
        else:
            pairs = [
                (a, b) for i, a in enumerate(free) for b in free[i + 1 :] if (a, b) not in linked
            ]
            if not pairs:
                raise ConfigError(
                    f"cannot place {wanted} links with degree bound {max_degree}", "num_links"
                )
            a, b = rng.choice(pairs)
        attempts = 0
        add(a, b)

    hosts_on = [0] * num_switches
    spread = list(range(num_switches))
    rng.shuffle(spread)
    host_switch = [spread[j % num_switches] for j in range(num_hosts)]
    for s in host_switch:
        hosts_on[s] += 1
    for s in range(num_switches):
        if hosts_on[s] + degree[s] > switch_ports:
            raise ConfigError(
                f"switch sw{s} needs {hosts_on[s] + degree[s]} ports, has {switch_ports}",
                "switch_ports",
            )

    builder = FabricBuilder()
    switch = [
        builder.add_node(NodeType.SWITCH, f"sw{s}", switch_ports) for s in range(num_switches)
    ]
    next_port = [1] * num_switches
    for j, s in enumerate(host_switch):
        host = builder.add_node(NodeType.CA, f"h{j}", 1)
        builder.connect(switch[s], next_port[s], host, 1)
        next_port[s] += 1
    for a, b in edges:
        builder.connect(switch[a], next_port[a], switch[b], next_port[b])
        next_port[a] += 1
        next_port[b] += 1
    return builder.build()


@dataclass(frozen=True, slots=True)
class TopologyGenerator:
    """A generator a scenario can name (`[topology] generator = "..."`), taking its
    shape as integer keyword parameters."""

    name: str
    build: Callable[..., Fabric]

    def __call__(self, **params: int) -> Fabric:
        return self.build(**params)


GENERATORS: Mapping[str, TopologyGenerator] = {
    gen.name: gen
    for gen in (
        TopologyGenerator("fat_tree_2level", fat_tree_2level),
        TopologyGenerator("fat_tree_3level", fat_tree_3level),
        TopologyGenerator("kary_ntree", kary_ntree),
        TopologyGenerator("random_topology", random_topology),
    )
}
"""Every generator by the name scenarios give it (the function's own name)."""


def _ft3(*shape: int, switch_ports: int = DEFAULT_SWITCH_PORTS) -> Fabric:
    pods, leaves, hosts, mids, cores, links = shape
    return fat_tree_3level(
        pods=pods,
        leaves_per_pod=leaves,
        hosts_per_leaf=hosts,
        mids_per_pod=mids,
        cores_per_group=cores,
        links=links,
        switch_ports=switch_ports,
    )


PRESETS: Mapping[str, Callable[[], Fabric]] = {
    "ft2-36": lambda: fat_tree_2level(leaves=4, hosts_per_leaf=9, spines=3, links=3),
    "ft2-324": lambda: fat_tree_2level(leaves=18, hosts_per_leaf=18, spines=18),
    "ft2-648": lambda: fat_tree_2level(leaves=36, hosts_per_leaf=18, spines=18),
    "ft3-32": lambda: _ft3(2, 4, 4, 4, 2, 2),
    "ft3-1296": lambda: _ft3(4, 18, 18, 18, 2, 9),
    "ft3-3240": lambda: _ft3(10, 18, 18, 18, 18, 1),
    "ft3-11664": lambda: _ft3(36, 18, 18, 18, 18, 1),
    "ft3-40960": lambda: _ft3(40, 32, 32, 32, 32, 1, switch_ports=64),
}
"""The shared topology files' shapes, the 11,664-host tree, and the largest tree
that fits a subnet's unicast LIDs: 64-port (NDR-class) switches, 40 of the 64 pods
a full three-level tree of them has (32 leaves of 32 hosts, 32 mids), all 1,024
cores: 3,584 switches and 40,960 hosts, 44,544 LIDs of the 49,151. The full tree
(64 pods, 65,536 hosts, 70,656 LIDs) does not fit."""


def preset(name: str) -> Fabric:
    """A fabric from `PRESETS` by name; ConfigError for an unknown name."""
    try:
        factory = PRESETS[name]
    except KeyError:
        known = ", ".join(sorted(PRESETS))
        raise ConfigError(f"unknown topology {name!r} (known: {known})", "topology") from None
    return factory()
