"""The SA database a new master SM takes over (OpenSM's sa_db_dump / sa_db_file).

OpenSM hands no SA state over in the SMInfo handover; with `sa_db_dump` on, its
master writes the SA database to a file (osm_sa_db_file_dump: multicast groups,
ServiceRecords, InformInfo subscriptions and every port's alias GUIDs), and an SM
loads that file in its first sweep as master, after discovery and before LID
assignment (osm_state_mgr.c do_sweep calling osm_sa_db_file_load, which skips every
later sweep). A standby on the same shared file then serves the subscriptions and
alias GUIDs of the master it replaces.

ibmig's SA keeps one more thing the path-change mechanism needs, and the dump
carries it: where each alias GUID was last seen (`SubnetDb.alias_last_seen`), kept
after a Delete. A live migration deletes the alias at its source seconds before it
sets it at the destination (`ibmig.core.migration.machine`): a master that dies in
between takes the only memory of the old LID with it, and the new master would see
the Set as a first registration and signal nothing.

Why not rebuild it from the ports instead (a real SM can read GUIDInfo of every
port by SMP in its first sweep)? The ports only say where alias GUIDs are *now*;
an alias deleted and not yet set again is in no port's table, so the move of
every VM in its pre-copy at the failover -- most of a migration storm -- would be
lost. The dump keeps it. ASSUMPTION: the dump is written through (on every
change), as if `sa_db_dump` ran at each alias write and subscription; OpenSM dumps
at the end of each sweep, so a dump that lags loses the changes made since, which
a scenario shows with `[faults.standby_sm] sa_db_handover = false` (nothing handed
over: the clients' re-registration rebuilds the subscriptions, moves in flight are
lost).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ibmig.core.sa.events import Subscription


@dataclass(frozen=True, slots=True)
class SaDatabase:
    """What the master's SA had written to its dump when it died."""

    alias_guids: tuple[tuple[int, tuple[tuple[int, int], ...]], ...]
    """(port GUID, ((GUIDInfo index, alias GUID), ...)) of every end port, as the
    SA's table holds them (under OpenSM's answer order a Set or Delete accepted and
    not yet written counts, as OpenSM dumps p_guids). The new master does not write
    them to the ports again (OpenSM's load_guidinfo queues that write; ibmig leaves
    it out: a write the dead master sent is taken to have landed)."""
    alias_last_seen: tuple[tuple[int, int, int], ...]
    """(alias GUID, LID, port GUID) it was last seen behind."""
    subscriptions: tuple[tuple[tuple[Any, ...], Subscription], ...]
    """InformInfo subscriptions with the keys the SA tells them apart by, oldest first."""
