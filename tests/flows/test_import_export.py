"""export_flows / import_flows: round trip, idempotent re-import, invalid files change nothing."""

from __future__ import annotations

import copy
import json

import pytest
from django.core.management import CommandError, call_command

from flows.demo import DEMO_FLOWS
from flows.models import Flow, FlowCacheVersion, Step, Transition
from flows.selectors import flows_export
from flows.services import FlowImportError, flows_import

pytestmark = pytest.mark.django_db


def snapshot():
    return (
        list(
            Flow.objects.order_by("name").values_list(
                "name", "is_default", "trigger_keywords", "updated_at"
            )
        ),
        list(
            Step.objects.order_by("flow__name", "name").values_list(
                "flow__name", "name", "step_type", "config", "is_entry", "id"
            )
        ),
        list(
            Transition.objects.order_by("from_step__name", "order").values_list(
                "from_step__name", "to_step__name", "condition"
            )
        ),
    )


def test_export_import_round_trip(tmp_path):
    flows_import(data=DEMO_FLOWS)
    path = tmp_path / "flows.json"
    call_command("export_flows", "--output", str(path))
    exported = json.loads(path.read_text())
    assert exported["format"] == "whatsappcrm.flows"
    assert [f["name"] for f in exported["flows"]] == ["lead_capture", "support", "main_menu"]
    Flow.objects.all().delete()
    call_command("import_flows", str(path))
    assert flows_export() == exported
    # The export describes exactly the flows of the demo document.
    by_name = {f["name"]: f for f in exported["flows"]}
    for original in DEMO_FLOWS["flows"]:
        expected = {**original, "steps": [{"entry": False, **s} for s in original["steps"]]}
        assert by_name[original["name"]] == expected


def test_reimport_updates_in_place_and_is_idempotent(tmp_path):
    flows_import(data=DEMO_FLOWS)
    first = snapshot()
    summary = flows_import(data=DEMO_FLOWS)
    assert summary == {"created": [], "updated": ["main_menu", "lead_capture", "support"]}
    again = snapshot()
    assert again[1] == first[1]  # same step rows (ids kept), same config
    assert again[2] == first[2]

    changed = copy.deepcopy(DEMO_FLOWS)
    changed["flows"][2]["steps"][0]["config"]["prompt"]["body"] = "What went wrong?"
    changed["flows"][2]["trigger_keywords"] = ["support"]
    flows_import(data=changed)
    describe = Step.objects.get(flow__name="support", name="describe")
    assert describe.config["prompt"]["body"] == "What went wrong?"
    assert Flow.objects.get(name="support").trigger_keywords == "support"
    assert Flow.objects.count() == 3


def test_import_moves_the_default_flow():
    flows_import(data=DEMO_FLOWS)
    other = copy.deepcopy(DEMO_FLOWS["flows"][2])
    other.update(name="new_default", is_default=True)
    flows_import(data={"flows": [other]})
    assert list(Flow.objects.filter(is_default=True).values_list("name", flat=True)) == [
        "new_default"
    ]


def test_an_invalid_file_reports_every_error_with_its_path_and_changes_nothing(tmp_path):
    flows_import(data=DEMO_FLOWS)
    before = snapshot()
    version = FlowCacheVersion.objects.get().version
    bad = copy.deepcopy(DEMO_FLOWS)
    bad["flows"][0]["description"] = "changed"  # a valid change that must not be written
    bad["flows"][1]["steps"][2]["config"]["prompt"]["buttons"] += [
        {"id": "x", "title": "X"},
        {"id": "y", "title": "Y"},
    ]
    bad["flows"][2]["steps"][1]["type"] = "teleport"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(CommandError) as excinfo:
        call_command("import_flows", str(path))
    message = str(excinfo.value)
    assert "flows[1].steps[2].config.prompt.buttons: 4 buttons; the limit is 3" in message
    assert "flows[2].steps[1].type: must be one of" in message
    assert "nothing was imported" in message
    assert snapshot() == before
    assert FlowCacheVersion.objects.get().version == version


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ([], ": the document must be a JSON object"),
        ({"flows": {}}, "flows: must be a list of flows"),
        ({"format": "other", "flows": []}, "format: must be 'whatsappcrm.flows'"),
        (
            {"flows": [DEMO_FLOWS["flows"][1], DEMO_FLOWS["flows"][1]]},
            "flows[1].name: flow 'lead_capture' appears twice",
        ),
        (
            {"flows": [DEMO_FLOWS["flows"][0], {**DEMO_FLOWS["flows"][1], "is_default": True}]},
            "flows[1].is_default: only one default flow",
        ),
        (
            {
                "flows": [
                    {
                        **DEMO_FLOWS["flows"][1],
                        "steps": [
                            {
                                **DEMO_FLOWS["flows"][1]["steps"][0],
                                "type": "start_flow",
                                "config": {"flow": "nowhere"},
                                "transitions": [],
                            }
                        ],
                    }
                ]
            },
            "flows[0].steps[0].config.flow: no flow named 'nowhere'",
        ),
    ],
)
def test_document_level_errors(document, expected):
    with pytest.raises(FlowImportError) as excinfo:
        flows_import(data=document)
    assert any(
        str(e).startswith(expected.lstrip(": ")) or expected in f": {e}"
        for e in excinfo.value.errors
    ), excinfo.value.errors
    assert not Flow.objects.exists()


def test_unreadable_files(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(CommandError, match="not valid JSON"):
        call_command("import_flows", str(path))
    with pytest.raises(CommandError, match="cannot read"):
        call_command("import_flows", str(tmp_path / "missing.json"))


def test_export_to_stdout(capsys):
    flows_import(data=DEMO_FLOWS)
    call_command("export_flows")
    assert json.loads(capsys.readouterr().out)["version"] == 1


def test_import_refuses_a_loop_across_flows_including_stored_ones():
    flows_import(data=DEMO_FLOWS)  # main_menu: to_support -> start_flow support
    support = copy.deepcopy(DEMO_FLOWS["flows"][2])
    support["steps"] = [
        {
            "name": "back",
            "type": "start_flow",
            "entry": True,
            "config": {"flow": "ping"},
            "transitions": [],
        }
    ]
    ping = {
        "name": "ping",
        "steps": [
            {
                "name": "go",
                "type": "start_flow",
                "entry": True,
                "config": {"flow": "support"},
                "transitions": [],
            }
        ],
    }
    with pytest.raises(FlowImportError, match="loop of automatic steps across flows"):
        flows_import(data={"flows": [support, ping]})
    assert not Flow.objects.filter(name="ping").exists()
