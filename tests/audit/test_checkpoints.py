"""Signed checkpoints close what the chain alone misses: a consistent rewrite and a cut tail."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from fleet.audit import checkpoints, services
from fleet.audit.keys import signing_key_id
from fleet.audit.models import AuditCheckpoint, AuditEvent
from fleet.audit.verify import Anchor
from fleet_audit_verify.signing import checkpoint_statement, private_key_from_seed, sign
from tests.audit.support import make_events, rewrite_from, tamper

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


@pytest.fixture(autouse=True)
def every_three(settings):
    settings.FLEET_AUDIT_CHECKPOINT_EVERY = 3


def test_a_checkpoint_is_signed_every_n_events_in_the_events_transaction():
    make_events(7)
    assert list(AuditCheckpoint.objects.order_by("sequence").values_list("sequence", flat=True)) == [3, 6]
    checkpoint = AuditCheckpoint.objects.get(sequence=6)
    assert checkpoint.hash == AuditEvent.objects.get(sequence=6).hash and checkpoint.key_id == signing_key_id()
    report = services.verify_chain()
    assert report.ok and report.checkpoints == 2 and report.checked == 7


def test_the_periodic_checkpoint_signs_the_head_only_when_it_moved():
    make_events(4)
    assert checkpoints.checkpoint_head().sequence == 4
    assert checkpoints.checkpoint_head() is None
    make_events(1)
    assert checkpoints.checkpoint_head().sequence == 5
    assert services.verify_chain().ok


def test_a_consistent_rewrite_passes_the_chain_but_not_the_checkpoints():
    make_events(7)
    rewrite_from(2)
    report = services.verify_chain()
    assert not report.ok and report.first_broken == 3
    assert "checkpoint of #3" in report.reason and "the chain was rewritten up to here" in report.reason


def test_a_cut_tail_is_named_by_the_checkpoint_beyond_it():
    make_events(7)
    tamper(("DELETE FROM audit_auditevent WHERE sequence > %s", [4]))
    report = services.verify_chain()
    assert not report.ok and report.first_broken == 5
    assert "checkpoint of #6" in report.reason and "events #5..#6 were removed (the tail was cut)" in report.reason


def test_a_cut_tail_and_its_checkpoints_is_caught_by_an_anchor_or_the_interval():
    make_events(7)
    head = AuditEvent.objects.get(sequence=7)
    tamper(("DELETE FROM audit_auditevent WHERE sequence > %s", [5]),
           ("DELETE FROM audit_auditcheckpoint WHERE sequence > %s", [5]))
    assert services.verify_chain().ok  # five events, checkpoint at 3: nothing inside the database tells
    report = services.verify_chain(anchors=[Anchor(7, head.hash, "deploy tag deploy/x of edge-1")])
    assert not report.ok and "deploy tag deploy/x of edge-1 names event #7" in report.reason
    make_events(1)  # #6 without its checkpoint? no: the next event makes one (6 - 3 >= 3)
    assert services.verify_chain().ok


def test_a_removed_checkpoint_is_missing_from_the_interval():
    make_events(10)
    tamper(("DELETE FROM audit_auditcheckpoint WHERE sequence = %s", [6]))
    report = services.verify_chain()
    assert not report.ok and report.first_broken == 6
    assert "no checkpoint for the 3 events after #3" in report.reason


def test_a_checkpoint_signed_with_another_key_is_refused():
    make_events(3)
    forged = checkpoint_statement(sequence=3, hash="f" * 64, time="2026-01-01T00:00:00+00:00", every=3,
                                  key_id=signing_key_id())
    other = {**forged, "signature": sign(private_key_from_seed("A" * 43 + "="), forged)}
    report = services.verify_chain(checkpoints=[other])
    assert not report.ok and "its signature does not verify" in report.reason


def test_command_reports_both_cases_with_the_first_disagreement(tmp_path):
    make_events(7)
    out = io.StringIO()
    call_command("audit", "checkpoints", "--output", str(tmp_path / "cps.jsonl"), stderr=out)
    tamper(("DELETE FROM audit_auditevent WHERE sequence > %s", [2]),
           ("DELETE FROM audit_auditcheckpoint", []))
    # Inside the database: two events and no checkpoint is a consistent little log...
    call_command("audit", "verify", stdout=io.StringIO())
    # ...but the checkpoints kept elsewhere remember more.
    with pytest.raises(CommandError, match=r"BROKEN after 2 good events: event #3: checkpoint of #3 "
                                           r".*but the chain ends at #2: .*tail was cut"):
        call_command("audit", "verify", "--checkpoints", str(tmp_path / "cps.jsonl"))
