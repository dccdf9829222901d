"""The SA database a new master takes over (`ibmig.core.sa.database`, OpenSM's
sa_db_file): a move whose Delete the dead master saw and whose Set reaches the new
SA is still one path change, reported to the subscribers the old SA had."""

from __future__ import annotations

from ibmig.core.sa import PathChangeDetected, SubnetAdministrator
from ibmig.wire.mad import Method
from ibmig.wire.smp_attrs import GUIDInfo
from tests.core.sa.sa_util import (
    H1_GUID,
    H1_LID,
    H2_GUID,
    H2_LID,
    H3_LID,
    answer_smps,
    build_subnet,
    drain,
    events,
    make_sa,
)
from tests.core.sa.test_sa_guidinfo import V1, V2, block, subscribe_path_changes, write


def master_mid_migration() -> SubnetAdministrator:
    """V1 and V2 registered at h1 and h2, h3 subscribed; V1 then deleted at h1 (a
    migration between its Delete and its Set)."""
    sa = make_sa()
    subscribe_path_changes(sa, H3_LID)
    write(sa, Method.SET, H1_LID, block(0, V1), (1,), now_ns=1_000)
    answer_smps(sa.sm, 1_500)
    write(sa, Method.SET, H2_LID, block(0, V2), (1,), now_ns=2_000)
    answer_smps(sa.sm, 2_500)
    write(sa, Method.DELETE, H1_LID, GUIDInfo(), (1,), now_ns=3_000)
    answer_smps(sa.sm, 3_500)
    drain(sa)
    return sa


def new_master(load_from: SubnetAdministrator | None) -> SubnetAdministrator:
    """Another SM's SA on the same subnet, with nothing but what it loads."""
    sa = make_sa(sm=build_subnet())
    if load_from is not None:
        sa.load_database(load_from.dump_database(), 4_000)
    return sa


def test_the_dump_holds_aliases_last_seen_and_subscriptions() -> None:
    old = master_mid_migration()
    dump = old.dump_database()
    assert dump.alias_guids == ((H2_GUID, ((1, V2),)),)
    assert set(dump.alias_last_seen) == {(V1, H1_LID, H1_GUID), (V2, H2_LID, H2_GUID)}
    assert [s for _, s in dump.subscriptions] == list(old.subscriptions)
    sa = new_master(old)
    assert sa.counters["sa_db_restored"] == 1 + 2 + 1
    assert sa.db.alias_owner == {V2: H2_GUID}
    assert sa.db.lid_of_guid(V2) == H2_LID  # PathRecords to V2 resolve at once
    assert sa.last_lid_of(V1) == H1_LID
    assert sa.subscriptions == old.subscriptions
    # Loading twice adds nothing.
    assert sa.load_database(dump, 5_000) == 0


def test_a_set_after_the_takeover_is_a_path_change_reported_to_the_old_subscribers() -> None:
    sa = new_master(master_mid_migration())
    sent = write(sa, Method.SET, H2_LID, block(0, V2, V1), (2,), now_ns=6_000)
    answer_smps(sa.sm, 6_500)
    # Seen when the Set is accepted (6 000), not when h2 confirms the write (6 500):
    # under OpenSM's answer order ("before_write", the default) the SA's table,
    # which PathRecords answer from, changes then; the Report leaves with the answer.
    changes = [e for e in events(sa) if isinstance(e, PathChangeDetected)]
    assert changes == [PathChangeDetected(V1, H1_LID, H2_LID, H1_GUID, H2_GUID, 6_000)]
    reports = [d for d, m in sent + drain(sa) if m.header.method == Method.REPORT]
    assert [d.dlid for d in reports] == [H3_LID]


def test_without_the_dump_the_set_is_a_first_registration() -> None:
    sa = new_master(None)
    sent = write(sa, Method.SET, H2_LID, block(0, V2, V1), (2,), now_ns=6_000)
    answer_smps(sa.sm, 6_500)
    assert sa.db.lid_of_guid(V1) == H2_LID  # the Set itself went through
    assert not [e for e in events(sa) if isinstance(e, PathChangeDetected)]
    # A Report would leave with the Set's answer (OpenSM's order): none there either.
    assert [d for d, m in sent + drain(sa) if m.header.method == Method.REPORT] == []


def test_a_set_accepted_but_not_yet_written_is_handed_over() -> None:
    """Under OpenSM's answer order the dump holds the SA's table (OpenSM dumps
    p_guids, changed when it accepted the Set): a master that dies after answering
    h2's Set, its write to h2 still on the wire, hands the alias over at h2."""
    old = master_mid_migration()
    sent = write(old, Method.SET, H2_LID, block(0, V2, V1), (2,), now_ns=3_800)
    assert old.db.alias_owner == {V2: H2_GUID}  # h2 not written yet
    assert [d.dlid for d, m in sent if m.header.method == Method.REPORT] == [H3_LID]
    dump = old.dump_database()
    assert dump.alias_guids == ((H2_GUID, ((1, V2), (2, V1))),)
    assert (V1, H2_LID, H2_GUID) in dump.alias_last_seen
    sa = new_master(old)
    assert sa.db.lid_of_guid(V1) == H2_LID
    assert sa.last_lid_of(V1) == H2_LID  # the move is not reported a second time
