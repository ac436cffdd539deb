"""The message and campaign state machines: every legal move works once; illegal ones are refused."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from campaigns.models import Campaign, Message
from campaigns.states import ALLOWED, CAMPAIGN_MOVES, CampaignStatus, MessageState, PauseReason
from campaigns.transitions import STAMPS, IllegalTransition, move_campaigns, sources, transition
from tests.support.factories import make_campaign, make_messages

M = MessageState


def _state(engine, message_id):
    with Session(engine) as session:
        return session.get(Message, message_id)


@pytest.mark.parametrize(("source", "target"), sorted(ALLOWED))
def test_every_legal_transition_moves_exactly_once(engine, source, target):
    # given a message in the source state
    campaign = make_campaign(engine)
    [message_id] = make_messages(engine, campaign.id, 1, state=source)
    # when it moves to the target, twice (a duplicated task, a replayed webhook)
    with engine.begin() as connection:
        first = transition(connection, message_id, expected=source, to=target)
        second = transition(connection, message_id, expected=source, to=target)
    # then only the first one changes it, and the entry time is stamped
    assert (first, second) == (1, 0)
    message = _state(engine, message_id)
    assert message.state == target
    if target in STAMPS:
        assert getattr(message, STAMPS[target]) is not None


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (M.READ, M.DELIVERED),  # a late delivery report never moves a read message back
        (M.DELIVERED, M.SENT),
        (M.FAILED, M.SUBMITTED),  # a failed message is only sent again through `retry` (-> pending)
        (M.SKIPPED, M.PENDING),
        (M.CANCELLED, M.PENDING),
        (M.PENDING, M.SENDING),  # nothing is sent without being queued
        (M.PENDING, M.SUBMITTED),
        (M.SUBMITTED, M.SENDING),  # an accepted message is never claimed for a second send
        (M.SENT, M.QUEUED),
        (M.READ, M.PENDING),
        (M.DELIVERED, M.PENDING),
    ],
)
def test_illegal_transitions_are_refused_and_change_nothing(engine, source, target):
    campaign = make_campaign(engine)
    [message_id] = make_messages(engine, campaign.id, 1, state=source)
    with engine.begin() as connection, pytest.raises(IllegalTransition):
        transition(connection, message_id, expected=source, to=target)
    assert _state(engine, message_id).state == source


def test_a_message_not_in_the_expected_state_is_left_alone(engine):
    # given one pending and one already-submitted message
    campaign = make_campaign(engine)
    pending, submitted = make_messages(engine, campaign.id, 1) + make_messages(engine, campaign.id, 1,
                                                                               state=M.SUBMITTED, start=1)
    # when both are claimed for queueing
    with engine.begin() as connection:
        moved = transition(connection, [pending, submitted], expected=M.PENDING, to=M.QUEUED, returning=True)
    # then only the pending one moved
    assert moved == [pending]
    assert _state(engine, submitted).state == M.SUBMITTED


def test_delivery_events_never_move_backwards(engine):
    campaign = make_campaign(engine)
    [message_id] = make_messages(engine, campaign.id, 1, state=M.SUBMITTED)
    with engine.begin() as connection:
        assert transition(connection, message_id, expected=sources(M.READ), to=M.READ) == 1
        assert transition(connection, message_id, expected=sources(M.DELIVERED), to=M.DELIVERED) == 0
    assert _state(engine, message_id).state == M.READ


def test_bulk_transitions_span_chunks_and_set_values(engine):
    campaign = make_campaign(engine)
    ids = make_messages(engine, campaign.id, 12_000)
    with engine.begin() as connection:
        moved = transition(connection, ids, expected=M.PENDING, to=M.QUEUED, error_code="x")
    assert moved == 12_000
    assert _state(engine, ids[-1]).error_code == "x"


def test_transition_each_sets_values_per_message_and_skips_lost_races(engine):
    # given two sending messages, one of which another worker already recorded
    campaign = make_campaign(engine)
    first, second = make_messages(engine, campaign.id, 2, state=M.SENDING)
    with engine.begin() as connection:
        transition(connection, second, expected=M.SENDING, to=M.FAILED)
    # when both are recorded as submitted with their own provider ids
    from campaigns.transitions import transition_each

    with engine.begin() as connection:
        transition_each(connection, [{"id": first, "provider_message_id": "p1"},
                                     {"id": second, "provider_message_id": "p2"}],
                        expected=M.SENDING, to=M.SUBMITTED)
    # then only the one still sending took its id
    assert (_state(engine, first).state, _state(engine, first).provider_message_id) == (M.SUBMITTED, "p1")
    assert (_state(engine, second).state, _state(engine, second).provider_message_id) == (M.FAILED, None)


# ---------------------------------------------------------------- campaigns


def _campaign(engine, campaign_id) -> Campaign:
    with Session(engine) as session:
        return session.get(Campaign, campaign_id)


@pytest.mark.parametrize(("source", "target"), sorted(CAMPAIGN_MOVES))
def test_every_legal_campaign_move_happens_exactly_once(engine, source, target):
    # given a campaign in the source status
    campaign = make_campaign(engine, status=source)
    reason = PauseReason.USER if target == CampaignStatus.PAUSED else None
    # when it is moved to the target twice (two operators, two pacers)
    with engine.begin() as connection:
        moves = [move_campaigns(connection, where=[Campaign.id == campaign.id], expected=source, to=target,
                                reason=reason) for _ in range(2)]
    # then only the first moves it
    assert moves == [1, 0]
    assert _campaign(engine, campaign.id).status == target


@pytest.mark.parametrize(("source", "target"), [
    (CampaignStatus.FINISHED, CampaignStatus.PAUSED),  # a finished campaign has nothing to pause
    (CampaignStatus.CANCELLED, CampaignStatus.RUNNING),  # cancelled is for good
    (CampaignStatus.PAUSED, CampaignStatus.FINISHED),  # it finishes only while running
    (CampaignStatus.DRAFT, CampaignStatus.FINISHED),
])
def test_illegal_campaign_moves_are_refused_and_change_nothing(engine, source, target):
    campaign = make_campaign(engine, status=source)
    reason = PauseReason.USER if target == CampaignStatus.PAUSED else None
    with engine.begin() as connection, pytest.raises(IllegalTransition):
        move_campaigns(connection, where=[Campaign.id == campaign.id], expected=source, to=target, reason=reason)
    assert _campaign(engine, campaign.id).status == source


def test_a_pause_carries_its_reason_and_a_resume_clears_it(engine):
    # given a running campaign
    campaign = make_campaign(engine, status=CampaignStatus.RUNNING)
    where = [Campaign.id == campaign.id]
    with engine.begin() as connection:
        # then a pause without a reason is refused
        with pytest.raises(ValueError, match="PauseReason"):
            move_campaigns(connection, where=where, expected=CampaignStatus.RUNNING, to=CampaignStatus.PAUSED)
        # when it pauses for quota
        move_campaigns(connection, where=where, expected=CampaignStatus.RUNNING, to=CampaignStatus.PAUSED,
                       reason=PauseReason.QUOTA, detail="2005 out of credit")
    paused = _campaign(engine, campaign.id)
    assert (paused.pause_reason, paused.pause_detail) == ("quota", "2005 out of credit")
    # when it is resumed, the reason goes with the pause
    with engine.begin() as connection:
        move_campaigns(connection, where=where, expected=CampaignStatus.PAUSED, to=CampaignStatus.RUNNING)
    resumed = _campaign(engine, campaign.id)
    assert (resumed.status, resumed.pause_reason, resumed.pause_detail) == ("running", None, None)
