"""contact_messages_process: order, idempotency, silence rules, errors, and its query count."""

from __future__ import annotations

import pytest

from flows import cache
from flows.actions import ActionResult, register, unregister
from flows.models import ConversationSession, SessionStatus
from flows.services import contact_messages_process, flows_import
from meta_integration.models import Contact, InboundMessage, OutboundMessage
from tests.factories import make_contact, make_inbound
from tests.flows.conftest import flow, refresh_definitions, reply_texts

pytestmark = pytest.mark.django_db

ASK = {
    "name": "ask",
    "type": "question",
    "config": {
        "prompt": {"type": "text", "body": "Your name?"},
        "expect": "text",
        "save_as": "name",
    },
    "transitions": [{"to": "greet", "condition": {}}],
}
GREET = {
    "name": "greet",
    "type": "send",
    "config": {"type": "text", "body": "Hello {{ context.name }}"},
    "transitions": [{"to": "ask", "condition": {}}],
}


@pytest.fixture
def echo_flow(load_flows):
    load_flows(flow("echo", [dict(ASK), dict(GREET)], is_default=True))


def test_first_message_starts_the_default_flow_and_replies_at_index_0(echo_flow, say):
    contact = make_contact()
    inbound = say(contact, "hi")
    [reply] = OutboundMessage.objects.filter(contact=contact)
    assert reply.idempotency_key == f"{inbound.wamid}:0"
    assert reply.in_reply_to == inbound
    assert reply.payload == {"type": "text", "text": {"preview_url": False, "body": "Your name?"}}
    assert inbound.processed_at is not None
    session = ConversationSession.objects.get(contact=contact)
    assert session.status == SessionStatus.ACTIVE
    assert session.current_step.name == "ask"
    assert session.expires_at == session.last_activity_at + __import__("datetime").timedelta(
        seconds=300
    )


def test_a_burst_is_processed_in_arrival_order_in_one_run(echo_flow):
    contact = make_contact()
    messages = [make_inbound(contact, text) for text in ["hi", "Ann", "Bob", "Cy"]]
    result = contact_messages_process(contact_id=contact.pk)
    assert result == {"processed": 4, "replies": 7}
    keys = list(OutboundMessage.objects.order_by("id").values_list("idempotency_key", "text"))
    assert keys == [
        (f"{messages[0].wamid}:0", "Your name?"),
        (f"{messages[1].wamid}:0", "Hello Ann"),
        (f"{messages[1].wamid}:1", "Your name?"),
        (f"{messages[2].wamid}:0", "Hello Bob"),
        (f"{messages[2].wamid}:1", "Your name?"),
        (f"{messages[3].wamid}:0", "Hello Cy"),
        (f"{messages[3].wamid}:1", "Your name?"),
    ]
    assert ConversationSession.objects.get().context == {"name": "Cy"}


def test_a_duplicate_run_does_nothing(echo_flow, say):
    contact = make_contact()
    say(contact, "hi")
    assert contact_messages_process(contact_id=contact.pk) == {"processed": 0, "replies": 0}
    assert OutboundMessage.objects.count() == 1
    assert contact_messages_process(contact_id=999999) == {"processed": 0, "replies": 0}


def test_redelivered_replies_are_not_recreated(echo_flow, say):
    contact = make_contact()
    inbound = say(contact, "hi")
    # As if the run's commit was lost after the rows were written: a re-run may recreate the
    # same keys, and outbound_message_create returns the existing rows.
    InboundMessage.objects.filter(pk=inbound.pk).update(processed_at=None)
    ConversationSession.objects.all().delete()
    contact_messages_process(contact_id=contact.pk)
    assert OutboundMessage.objects.count() == 1


@pytest.mark.parametrize("flag", ["blocked", "needs_human"])
def test_blocked_and_handed_over_contacts_get_no_reply_but_are_marked_processed(
    echo_flow, say, flag
):
    contact = make_contact(**{flag: True})
    inbound = say(contact, "hi")
    assert inbound.processed_at is not None
    assert not OutboundMessage.objects.exists()
    assert not ConversationSession.objects.exists()


def test_no_default_flow_and_no_trigger_means_no_reply(load_flows, say):
    load_flows(flow("kw", [dict(ASK), dict(GREET)], trigger_keywords=["start"]))
    contact = make_contact()
    assert say(contact, "hello").processed_at is not None
    assert not OutboundMessage.objects.exists()
    assert reply_texts(say(contact, "Start please")) == ["Your name?"]


def test_an_engine_crash_still_answers_and_ends_the_session(echo_flow, say, monkeypatch):
    contact = make_contact()
    say(contact, "hi")

    def crash(*args, **kwargs):
        raise ZeroDivisionError("bug")

    monkeypatch.setattr("flows.services.processing.handle_message", crash)
    inbound = say(contact, "Ann")
    assert reply_texts(inbound) == [
        'Sorry, something went wrong on our side. Send "menu" to start again.'
    ]
    assert ConversationSession.objects.get().status == SessionStatus.CANCELLED


def test_a_body_too_long_after_placeholders_degrades_to_text(load_flows, say):
    load_flows(
        flow(
            "f",
            [
                {**ASK, "config": {**ASK["config"], "max_length": 4096}},
                {
                    "name": "greet",
                    "type": "send",
                    "config": {
                        "type": "buttons",
                        "body": "You said {{ context.name }}",
                        "buttons": [{"id": "ok", "title": "OK"}],
                    },
                },
            ],
            is_default=True,
        )
    )
    contact = make_contact()
    say(contact, "hi")
    inbound = say(contact, "x" * 1100)  # the buttons body limit is 1024
    [reply] = OutboundMessage.objects.filter(in_reply_to=inbound)
    assert reply.message_type == "text"
    assert reply.text.startswith("You said xxx")


def test_actions_run_in_a_savepoint_and_a_database_error_takes_the_error_branch(load_flows, say):
    calls = []

    @register("tests.broken_db")
    def broken(call):
        calls.append(call.contact["id"])
        # An IntegrityError inside the flow transaction: on PostgreSQL this would abort the
        # whole transaction without the savepoint.
        Contact.objects.create(wa_id=call.contact["wa_id"])
        return {}

    @register("tests.lookup")
    def lookup(call):
        return ActionResult(
            context={"count": Contact.objects.count()},
            messages=[{"type": "text", "body": "looked up"}],
        )

    try:
        load_flows(
            flow(
                "f",
                [
                    {
                        "name": "a",
                        "type": "action",
                        "config": {"action": "tests.broken_db"},
                        "transitions": [
                            {"to": "failed", "condition": {"op": "action_failed"}},
                            {"to": "b", "condition": {}},
                        ],
                    },
                    {
                        "name": "failed",
                        "type": "send",
                        "config": {"type": "text", "body": "failed"},
                        "transitions": [{"to": "b", "condition": {}}],
                    },
                    {
                        "name": "b",
                        "type": "action",
                        "config": {"action": "tests.lookup", "save_as": "r"},
                        "transitions": [{"to": "c", "condition": {}}],
                    },
                    {
                        "name": "c",
                        "type": "end",
                        "config": {"message": "{{ context.r.count }} contact(s)"},
                    },
                ],
                is_default=True,
            )
        )
        contact = make_contact()
        inbound = say(contact, "go")
    finally:
        unregister("tests.broken_db")
        unregister("tests.lookup")
    assert calls == [contact.pk]
    assert reply_texts(inbound) == ["failed", "looked up", "1 contact(s)"]


def test_definitions_are_cached_and_an_edit_is_seen_after_the_version_moves(echo_flow, say):
    from flows.models import Step

    contact = make_contact()
    say(contact, "hi")
    step = Step.objects.get(name="ask")
    step.config = {**step.config, "prompt": {"type": "text", "body": "What is your name?"}}
    step.save()  # bumps the version in the database; Redis moves only on commit
    assert reply_texts(say(make_contact("111"), "hi")) == ["Your name?"]  # still cached
    refresh_definitions()  # what the commit does (tests run inside one transaction)
    assert reply_texts(say(make_contact("222"), "hi")) == ["What is your name?"]


@pytest.mark.django_db(transaction=True)
def test_bump_publishes_the_version_once_after_commit_and_never_backwards(monkeypatch):
    from django.db import transaction

    from flows.models import FlowCacheVersion

    flows_import(data={"flows": [flow("echo", [dict(ASK), dict(GREET)], is_default=True)]})
    published = FlowCacheVersion.objects.get().version
    assert cache.current_version() == published  # the import's commit published it
    calls = []
    monkeypatch.setattr(cache, "publish_version", lambda v: calls.append(v) or v)
    with transaction.atomic():
        cache.bump_version()
        cache.bump_version()
        assert calls == []  # nothing before the commit
    assert calls == [published + 2]  # one publish per transaction, of the committed value
    monkeypatch.undo()
    cache.publish_version(published + 2)
    # "set if greater": an older commit landing late cannot move the version back.
    assert cache.publish_version(published) == published + 2
    assert cache.current_version() == published + 2


TWO_QUESTIONS = flow(
    "two",
    [
        {**ASK, "transitions": [{"to": "ask_city", "condition": {}}]},
        {
            "name": "ask_city",
            "type": "question",
            "config": {"prompt": {"type": "text", "body": "Your city?"}, "expect": "text"},
        },
    ],
    is_default=True,
)


@pytest.mark.parametrize("with_session", [True, False], ids=["answer", "fresh-start"])
def test_processing_one_message_takes_a_pinned_number_of_queries(
    load_flows, say, django_assert_num_queries, with_session
):
    load_flows(TWO_QUESTIONS)
    contact = make_contact()
    if with_session:
        say(contact, "hi")  # the session exists and waits at the first question
    cache.get_definitions()  # warm, as in a running worker: definitions cost no query
    make_inbound(contact, "Ann")
    # In production the outer SAVEPOINT/RELEASE pair is the (unlogged) BEGIN/COMMIT: 8.
    #  1 SAVEPOINT (the test's transaction wraps ours)
    #  2 SELECT the contact's flows state JOIN contact FOR UPDATE OF state (the per-contact
    #    lock: not the Contact row, which every webhook upserts)
    #  3 SELECT unprocessed, unparked inbound messages of the contact
    #  4 SELECT the contact's open sessions
    #  5-7 outbound_message_create: SAVEPOINT, INSERT, RELEASE
    #  8 UPDATE (or INSERT) the session
    #  9 UPDATE processed_at of the messages
    #  10 RELEASE SAVEPOINT
    # A contact's very first message also creates its lock row, once: the lock SELECT finds
    # nothing, then SELECT the contact exists, INSERT .. ON CONFLICT DO NOTHING, SELECT again.
    with django_assert_num_queries(10 if with_session else 13):
        result = contact_messages_process(contact_id=contact.pk)
    assert result == {"processed": 1, "replies": 1}


def test_reactions_are_not_answered_and_texts_can_be_overridden(echo_flow, say, settings):
    settings.FLOWS_TEXTS = {"nothing_to_cancel": "Nada que cancelar."}
    contact = make_contact()
    reaction = say(contact, "", message_type="reaction")
    assert reaction.processed_at is not None and reply_texts(reaction) == []
    assert not ConversationSession.objects.exists()
    assert reply_texts(say(contact, "cancel")) == ["Nada que cancelar."]


def test_a_handover_cleared_on_the_contact_directly_is_closed_at_the_next_message(load_flows, say):
    load_flows(flow("h", [{"name": "h", "type": "handover"}], is_default=True))
    contact = make_contact()
    say(contact, "help")
    Contact.objects.filter(pk=contact.pk).update(needs_human=False)  # the contact admin
    say(contact, "hello")
    ended = ConversationSession.objects.order_by("id").first()
    assert (ended.status, ended.ended_reason) == (SessionStatus.HANDED_OVER, "resolved")
    assert ended.ended_at is not None
