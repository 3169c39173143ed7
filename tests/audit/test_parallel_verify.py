"""A long chain on PostgreSQL is verified by several processes, one segment each: the
answer must be the one a single walk gives, including at the seams between segments."""

import pytest

from fleet.audit import verify
from fleet.audit.services import verify_chain
from tests.audit.support import make_events, tamper

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def three_workers(settings, monkeypatch):
    settings.FLEET_AUDIT_CHECKPOINT_EVERY = 3
    monkeypatch.setattr(verify, "MIN_SEGMENT", 4)  # 14 events: segments #1-4, #5-8, #9-end


def parallel(**kwargs):
    return verify_chain(workers=3, **kwargs)


def serial(**kwargs):
    return verify_chain(**kwargs)


def test_segments_agree_with_a_single_walk():
    make_events(14)
    assert verify._workers(1, 3) == 3
    report = parallel()
    assert report.ok and report.checked == 14 and report.checkpoints == 4
    assert report.as_dict() | {"events_per_second": 0} == serial().as_dict() | {"events_per_second": 0}


@pytest.mark.parametrize(("sql", "params", "first_broken", "fragment"), [
    ("UPDATE audit_auditevent SET actor = 'mallory' WHERE sequence = %s", [6], 6, "it was altered"),
    ("DELETE FROM audit_auditevent WHERE sequence = %s", [5], 6, "events are missing"),  # at a seam
    ("DELETE FROM audit_auditevent WHERE sequence > %s", [10], 11, "the tail was cut"),
    ("UPDATE audit_auditevent SET prev_hash = %s WHERE sequence = %s", ["0" * 64, 9], 9, "re-linked"),  # a seam
])
def test_segments_name_the_same_first_disagreement(sql, params, first_broken, fragment):
    make_events(14)
    tamper((sql, params))
    report = parallel()
    assert not report.ok and report.first_broken == first_broken and fragment in report.reason
    single = serial()
    assert (single.first_broken, single.good) == (report.first_broken, report.good)
