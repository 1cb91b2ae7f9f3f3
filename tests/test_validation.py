"""BPMN validation: safe XML, engine gaps from SPIFF-NOTES.md, motcua conventions; MIWG files never crash it."""
from pathlib import Path

import pytest
from bpmn_fixtures import LANES, Flow, Node, Process, gateway_process, linear_with, render
from conftest import watchdog

from engine.catalog import submit_version
from engine.errors import BpmnInvalid
from engine.workflow import validation

ROOT = Path(__file__).resolve().parent.parent
ROLES = {"mot_cua", "chuyen_vien", "lanh_dao_phong", "lanh_dao", "van_thu"}
MIWG = ROOT.parent / "shared" / "bpmn-miwg"


def codes(xml, days=1, roles=ROLES):
    return {p.code for p in validation.validate(xml, days, roles).problems}


@pytest.mark.parametrize("code,days", [("1.001193", 0), ("1.001612", 3), ("1.009994", 15)])
def test_shipped_processes_are_valid(code, days):
    result = validation.validate((ROOT / "processes" / code / "v1.bpmn").read_bytes(), days, ROLES)
    assert result.valid, result.problems
    assert result.model.supplement_events == ["Event_ChoBoSung"]


def test_xml_bomb_and_external_entity_are_refused_without_expansion():
    bomb = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            + "".join(f'<!ENTITY lol{i} "{("&lol%d;" % (i - 1) if i else "&lol;") * 10}">' for i in range(1, 10))
            + ']><definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL">&lol9;</definitions>')
    xxe = ('<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           '<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL">&x;</definitions>')
    for doc in (bomb, xxe):
        with watchdog(10, "a document with entities"):  # expanded, the bomb would be 10^9 "lol"s
            assert codes(doc) == {"xml_doctype"}


def test_truncated_xml_gets_a_clear_problem_not_an_exception():
    xml = linear_with([])
    assert codes(xml[: len(xml) // 2]) == {"xml_not_well_formed"}


def test_too_deep_xml_is_refused():
    deep = "<a>" * 200 + "</a>" * 200
    assert codes(deep) == {"xml_too_deep"}


def test_missing_flow_target_and_reserved_id():
    xml = linear_with([]).replace('targetRef="Task_B"', 'targetRef="Task_Missing"', 1)
    assert "flow_target_missing" in codes(xml)
    assert "reserved_id" in codes(linear_with([]).replace('"Task_A"', '"Start"').replace(">Task_A<", ">Start<"))


def test_task_with_two_outgoing_flows_and_disconnected_node():
    nodes = [Node("S", "startEvent", "s", "Lane_mc", 0), Node("Task_A", "userTask", "A", "Lane_mc", 1, {"duration": "PT1H"}),
             Node("E1", "endEvent", "e1", "Lane_mc", 2), Node("E2", "endEvent", "e2", "Lane_cv", 2),
             Node("Lonely", "userTask", "L", "Lane_cv", 3, {"duration": "PT1H"})]
    flows = [Flow("F1", "S", "Task_A"), Flow("F2", "Task_A", "E1"), Flow("F3", "Task_A", "E2")]
    found = codes(render(Process("P", "p", LANES, nodes, flows)))
    assert {"task_multiple_outgoing", "disconnected_node"} <= found


def test_gateway_flow_without_condition_or_default():
    xml = gateway_process('decision == "approve"').replace(
        '<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">decision == "refuse"</bpmn:conditionExpression>', "")
    assert "gateway_flow_without_condition" in codes(xml)


def test_unquoted_timer_and_unsafe_expressions():
    unquoted = linear_with([Node("T", "intermediateCatchEvent", "t", "Lane_mc", 2, timer=("timeDuration", "PT5M"))])
    assert "timer_unquoted" in codes(unquoted)
    assert "unsafe_expression" in codes(gateway_process("().__class__.__base__"))
    script = linear_with([Node("Sc", "scriptTask", "s", "Lane_mc", 2, script="import os")])
    assert "unsafe_script" in codes(script)


def test_two_timers_on_an_event_based_gateway_are_refused():
    nodes = [Node("S", "startEvent", "s", "Lane_mc", 0), Node("G", "eventBasedGateway", "g", "Lane_mc", 1),
             Node("T1", "intermediateCatchEvent", "t1", "Lane_mc", 2, timer=("timeDuration", '"PT1H"')),
             Node("T2", "intermediateCatchEvent", "t2", "Lane_cv", 2, timer=("timeDuration", '"PT2H"')),
             Node("E1", "endEvent", "e", "Lane_mc", 3), Node("E2", "endEvent", "e", "Lane_cv", 3)]
    flows = [Flow("F1", "S", "G"), Flow("F2", "G", "T1"), Flow("F3", "G", "T2"), Flow("F4", "T1", "E1"), Flow("F5", "T2", "E2")]
    assert "event_gateway_two_timers" in codes(render(Process("P", "p", LANES, nodes, flows)))


def test_conventions_roles_durations_and_statutory_budget():
    xml = linear_with([])
    assert "unknown_role" in codes(xml, roles={"mot_cua"})
    assert "task_without_duration" in codes(xml.replace('<spiffworkflow:property name="duration" value="PT1H" />', "", 1))
    assert "bad_duration" in codes(xml.replace('value="PT1H"', 'value="P1M"', 1))
    over = xml.replace('value="PT1H"', 'value="PT7H30M"', 1)  # 7.5h + 1h > one 8-hour day
    assert "durations_exceed_statutory" in codes(over, days=1)
    assert "durations_exceed_statutory" not in codes(over, days=2)


def test_camunda_properties_are_read_too():
    xml = linear_with([]).replace("spiffworkflow:properties", "camunda:properties").replace(
        "spiffworkflow:property", "camunda:property").replace(
        'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"',
        'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" xmlns:camunda="http://camunda.org/schema/1.0/bpmn"')
    result = validation.validate(xml, 1, ROLES)
    assert result.valid, result.problems
    assert result.model.steps["Task_A"].duration == "PT1H" and result.model.steps["Task_B"].role == "chuyen_vien"


def test_create_version_refuses_an_invalid_bpmn_and_stores_nothing(session, office):
    from sqlalchemy import func, select

    from engine.store.models import ProcedureVersion
    before = session.scalar(select(func.count()).select_from(ProcedureVersion))
    with pytest.raises(BpmnInvalid) as err:
        submit_version(session, actor_id=None, procedure_code="1.001612", bpmn="<not-bpmn")
    assert err.value.problems[0]["code"] == "xml_not_well_formed"
    session.rollback()
    assert session.scalar(select(func.count()).select_from(ProcedureVersion)) == before


@pytest.mark.skipif(not MIWG.exists(), reason="shared/bpmn-miwg is laid beside the repository")
def test_every_miwg_file_gets_a_verdict_without_crashing():
    files = sorted(MIWG.rglob("*.bpmn"))
    assert len(files) > 200
    for path in files:
        result = validation.validate(path.read_bytes(), 30, None)
        assert isinstance(result.valid, bool)
        assert all(p.code and p.severity in ("error", "warning") for p in result.problems), path


def test_every_problem_code_has_a_vietnamese_message():
    import re as _re
    source = (ROOT / "engine/workflow/validation.py").read_text() + (ROOT / "engine/workflow/bpmn_xml.py").read_text()
    codes = set(_re.findall(r'Problem\(ERROR, "([a-z_]+)"', source)) | set(_re.findall(r'UnsafeXml\("([a-z_]+)"', source))
    codes.add("durations_exceed_statutory")
    assert codes and codes <= set(validation.MESSAGES_VI)
    problem = validation.validate("<a", 1, ROLES).problems[0].as_dict()
    assert problem["message_vi"] == validation.MESSAGES_VI["xml_not_well_formed"] and problem["message"]


def test_decision_branches_must_be_readable_and_supplement_branch_must_wait_for_the_citizen():
    xml = (ROOT / "processes/1.001612/v1.bpmn").read_text()
    unreadable = xml.replace('decision == "refuse"', 'len(decision) > 3')
    assert "decision_unreadable" in codes(unreadable, days=3)
    skip_wait = xml.replace('sourceRef="Gateway_ThamDinh" targetRef="Event_ChoBoSung"',
                            'sourceRef="Gateway_ThamDinh" targetRef="Task_TiepNhan"')
    assert "supplement_path_shape" in codes(skip_wait, days=3)
    assert codes(xml, days=3) == set()


def test_a_data_gateway_without_default_is_warned_but_decision_gateways_are_not():
    nodes = [Node("S", "startEvent", "s", "Lane_mc", 0), Node("G", "exclusiveGateway", "?", "Lane_mc", 1),
             Node("Task_A", "userTask", "A", "Lane_mc", 2, {"duration": "PT1H"}),
             Node("E", "endEvent", "e", "Lane_mc", 3), Node("E2", "endEvent", "e2", "Lane_cv", 2)]
    flows = [Flow("F1", "S", "G"), Flow("F2", "G", "Task_A", condition='channel == "online"'),
             Flow("F3", "G", "E2", condition='channel == "post"'), Flow("F4", "Task_A", "E")]
    result = validation.validate(render(Process("P", "p", LANES, nodes, flows)), 1, ROLES)
    assert [(p.code, p.severity) for p in result.problems] == [("gateway_may_dead_end", "warning")]
    assert result.valid  # a warning does not block saving
    shipped = validation.validate((ROOT / "processes/1.001612/v1.bpmn").read_bytes(), 3, ROLES)
    assert shipped.problems == []


def test_a_refusal_must_pass_the_leader_before_the_process_ends():
    """L11: form 03 is signed by the agency's leader; a specialist's refuse branch that ends the process
    without a leader's step is refused, naming the end event it reaches."""
    xml = (ROOT / "processes/1.001612/v1.bpmn").read_text()
    unsigned = xml.replace('sourceRef="Gateway_ThamDinh" targetRef="Task_KyTuChoi"',
                           'sourceRef="Gateway_ThamDinh" targetRef="EndEvent_TuChoi"')
    result = validation.validate(unsigned, 3, ROLES)
    problems = [p for p in result.problems if p.code == "refusal_not_signed"]
    assert len(problems) == 1 and problems[0].element_id == "Flow_refuse" and "EndEvent_TuChoi" in problems[0].message
    assert not result.valid
    # Through a leader's step it is fine — and a leader's own refuse decision needs no one else.
    assert "refusal_not_signed" not in codes(xml, days=3)
