"""Placeholders (one pass, allow-list only) and keyword matching (whole words, no accents)."""

from __future__ import annotations

import pytest

from flows.engine import normalize, render
from flows.engine.text import compile_keyword, find_trigger, keyword_matches

CONTACT = {"id": 9, "wa_id": "16505551234", "profile_name": "Sheena", "name": "Sheena"}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Hi {{ name }}", "Hi Sheena"),
        ("Hi {{name}} ({{ wa_id }})", "Hi Sheena (16505551234)"),
        ("{{ contact.profile_name }}", "Sheena"),
        ("Your plan: {{ context.plan }}", "Your plan: gold"),
        ("{{ context.order.total }}", "12.5"),
        ("{{ context.missing }}!", "!"),
        ("{{ context.flag }}", "yes"),
        ("{{ context.order }}", ""),  # containers never render
        ("{{ contact.id }} {{ contact.blocked }}", "{{ contact.id }} {{ contact.blocked }}"),
        ("{{ secret }}", "{{ secret }}"),
        ("{{ context.plan.__class__ }}", ""),  # a dict lookup only: no attribute access
        ("{% if x %}{{ name|upper }}", "{% if x %}{{ name|upper }}"),
    ],
)
def test_render(template, expected):
    context = {"plan": "gold", "order": {"total": 12.5}, "flag": True}
    assert render(template, contact=CONTACT, context=context) == expected


def test_text_typed_by_the_customer_is_never_expanded_again():
    context = {"name": "{{ context.secret }} {{ wa_id }}", "secret": "s3cr3t"}
    rendered = render("Thanks {{ context.name }}!", contact=CONTACT, context=context)
    assert rendered == "Thanks {{ context.secret }} {{ wa_id }}!"
    hostile_contact = {
        **CONTACT,
        "name": "{{ context.secret }}",
        "profile_name": "{{ context.secret }}",
    }
    assert (
        render("Hi {{ name }}", contact=hostile_contact, context=context)
        == "Hi {{ context.secret }}"
    )


def test_normalize_strips_accents_case_and_spacing():
    assert normalize("  Ça   VA  Élan ") == "ca va elan"
    assert normalize("\uff4d\uff45\uff4e\uff55") == "menu"  # NFKD folds full-width letters


@pytest.mark.parametrize(
    ("keyword", "message", "matches"),
    [
        ("hi", "hi", True),
        ("hi", "Hi there!", True),
        ("hi", "this", False),
        ("hi", "chips", False),
        ("hi", "oh,hi.", True),
        ("café", "CAFE please", True),
        ("cafe", "un café", True),
        ("menú", "MENU", True),
        ("price list", "the price list?", True),
        ("price list", "list price", False),
        ("price list", "price", False),
        ("👍", "👍", True),
        ("👍", "ok 👍", False),
    ],
)
def test_keyword_matching(keyword, message, matches):
    assert keyword_matches(compile_keyword(keyword), message) is matches


def test_find_trigger_respects_order():
    triggers = [(compile_keyword("buy now"), "sales"), (compile_keyword("buy"), "shop")]
    assert find_trigger(triggers, ["I want to buy now"]) == "sales"
    assert find_trigger(triggers, ["buy"]) == "shop"
    assert find_trigger(triggers, ["buyer"]) is None
