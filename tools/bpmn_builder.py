"""Builds motcua-convention BPMN files (with diagram layout) from a compact description.

Used to author the shipped procedures in processes/ and the scenario fixtures in tests/; the
generated XML is what the engine loads, exactly as a file from a modeler would be.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

LANE_H = 150
POOL_X, POOL_Y = 160, 80
LANE_LABEL_W = 30
COL_W = 150
SIZES = {
    "startEvent": (36, 36), "endEvent": (36, 36), "intermediateCatchEvent": (36, 36),
    "exclusiveGateway": (50, 50), "parallelGateway": (50, 50), "eventBasedGateway": (50, 50),
    "userTask": (110, 80), "scriptTask": (110, 80), "task": (110, 80),
}


@dataclass
class Node:
    id: str
    kind: str
    name: str
    lane: str
    col: float
    props: dict = field(default_factory=dict)
    message: str | None = None  # for message catch events
    timer: tuple[str, str] | None = None  # ("timeDuration" | "timeDate", expression)
    script: str | None = None


@dataclass
class Flow:
    id: str
    source: str
    target: str
    name: str = ""
    condition: str | None = None
    default: bool = False


@dataclass
class Process:
    id: str
    name: str
    lanes: list[tuple]  # (lane id, lane name, role) or (lane id, lane name, role, unit: @receiving | @parent | code)
    nodes: list[Node]
    flows: list[Flow]
    messages: dict[str, str] = field(default_factory=dict)  # message id -> name


def _props(props: dict) -> str:
    if not props:
        return ""
    inner = "".join(f'<spiffworkflow:property name={quoteattr(k)} value={quoteattr(v)} />' for k, v in props.items())
    return f"<bpmn:extensionElements><spiffworkflow:properties>{inner}</spiffworkflow:properties></bpmn:extensionElements>"


def render(p: Process) -> str:
    lane_index = {lane[0]: i for i, lane in enumerate(p.lanes)}
    nodes = {n.id: n for n in p.nodes}
    incoming: dict[str, list[str]] = {}
    outgoing: dict[str, list[str]] = {}
    for f in p.flows:
        outgoing.setdefault(f.source, []).append(f.id)
        incoming.setdefault(f.target, []).append(f.id)
    max_col = max(n.col for n in p.nodes)
    pool_w = LANE_LABEL_W + int((max_col + 1) * COL_W) + 60
    pool_h = LANE_H * len(p.lanes)

    def bounds(n: Node):
        w, h = SIZES[n.kind]
        cx = POOL_X + LANE_LABEL_W + 60 + n.col * COL_W
        cy = POOL_Y + lane_index[n.lane] * LANE_H + LANE_H / 2
        return cx - w / 2, cy - h / 2, w, h

    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" xmlns:dc="http://www.omg.org/spec/DD/20100524/DC" '
        'xmlns:di="http://www.omg.org/spec/DD/20100524/DI" xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'id="Definitions_{p.id}" targetNamespace="http://bpmn.io/schema/bpmn" '
        'exporter="motcua tools/bpmn_builder.py" exporterVersion="1">',
        f'  <bpmn:collaboration id="Collaboration_{p.id}">',
        f'    <bpmn:participant id="Participant_{p.id}" name={quoteattr(p.name)} processRef="{p.id}" />',
        "  </bpmn:collaboration>",
    ]
    for mid, mname in p.messages.items():
        out.append(f'  <bpmn:message id="{mid}" name="{mname}" />')
    out.append(f'  <bpmn:process id="{p.id}" name={quoteattr(p.name)} isExecutable="true">')
    out.append(f'    <bpmn:laneSet id="LaneSet_{p.id}">')
    for lane_id, lane_name, role, *where in p.lanes:
        refs = "".join(f"<bpmn:flowNodeRef>{n.id}</bpmn:flowNodeRef>" for n in p.nodes if n.lane == lane_id)
        props = {"role": role, **({"unit": where[0]} if where else {})}
        out.append(f'      <bpmn:lane id="{lane_id}" name={quoteattr(lane_name)}>{_props(props)}{refs}</bpmn:lane>')
    out.append("    </bpmn:laneSet>")
    for n in p.nodes:
        attrs = f'id="{n.id}" name={quoteattr(n.name)}'
        default = next((f.id for f in p.flows if f.source == n.id and f.default), None)
        if default:
            attrs += f' default="{default}"'
        body = _props(n.props)
        body += "".join(f"<bpmn:incoming>{i}</bpmn:incoming>" for i in incoming.get(n.id, []))
        body += "".join(f"<bpmn:outgoing>{o}</bpmn:outgoing>" for o in outgoing.get(n.id, []))
        if n.message:
            body += f'<bpmn:messageEventDefinition id="MED_{n.id}" messageRef="{n.message}" />'
        if n.timer:
            kind, expr = n.timer
            body += (f'<bpmn:timerEventDefinition id="TED_{n.id}"><bpmn:{kind} xsi:type="bpmn:tFormalExpression">'
                     f"{escape(expr)}</bpmn:{kind}></bpmn:timerEventDefinition>")
        if n.script:
            body += f"<bpmn:script>{escape(n.script)}</bpmn:script>"
        out.append(f"    <bpmn:{n.kind} {attrs}>{body}</bpmn:{n.kind}>")
    for f in p.flows:
        name = f" name={quoteattr(f.name)}" if f.name else ""
        cond = ""
        if f.condition:
            cond = f'<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{escape(f.condition)}</bpmn:conditionExpression>'
        out.append(f'    <bpmn:sequenceFlow id="{f.id}"{name} sourceRef="{f.source}" targetRef="{f.target}">'
                   f"{cond}</bpmn:sequenceFlow>")
    out.append("  </bpmn:process>")
    out.append(f'  <bpmndi:BPMNDiagram id="Diagram_{p.id}">')
    out.append(f'    <bpmndi:BPMNPlane id="Plane_{p.id}" bpmnElement="Collaboration_{p.id}">')
    out.append(f'      <bpmndi:BPMNShape id="Participant_{p.id}_di" bpmnElement="Participant_{p.id}" isHorizontal="true">'
               f'<dc:Bounds x="{POOL_X}" y="{POOL_Y}" width="{pool_w}" height="{pool_h}" /></bpmndi:BPMNShape>')
    for i, (lane_id, *_) in enumerate(p.lanes):
        out.append(f'      <bpmndi:BPMNShape id="{lane_id}_di" bpmnElement="{lane_id}" isHorizontal="true">'
                   f'<dc:Bounds x="{POOL_X + LANE_LABEL_W}" y="{POOL_Y + i * LANE_H}" '
                   f'width="{pool_w - LANE_LABEL_W}" height="{LANE_H}" /></bpmndi:BPMNShape>')
    for n in p.nodes:
        x, y, w, h = bounds(n)
        marker = ' isMarkerVisible="true"' if n.kind == "exclusiveGateway" else ""
        out.append(f'      <bpmndi:BPMNShape id="{n.id}_di" bpmnElement="{n.id}"{marker}>'
                   f'<dc:Bounds x="{x:g}" y="{y:g}" width="{w}" height="{h}" /></bpmndi:BPMNShape>')
    for f in p.flows:
        sx, sy, sw, sh = bounds(nodes[f.source])
        tx, ty, tw, th = bounds(nodes[f.target])
        s_c, t_c = (sx + sw / 2, sy + sh / 2), (tx + tw / 2, ty + th / 2)
        if tx > sx + sw:  # forward: leave right, enter left
            start, end = (sx + sw, s_c[1]), (tx, t_c[1])
            pts = [start, ((start[0] + end[0]) / 2, start[1]), ((start[0] + end[0]) / 2, end[1]), end]
        else:  # backward loop: go over the top of the lane
            top = min(sy, ty) - 25
            start, end = (s_c[0], sy), (t_c[0], ty)
            pts = [start, (start[0], top), (end[0], top), end]
        wps = "".join(f'<di:waypoint x="{x:g}" y="{y:g}" />' for x, y in pts)
        out.append(f'      <bpmndi:BPMNEdge id="{f.id}_di" bpmnElement="{f.id}">{wps}</bpmndi:BPMNEdge>')
    out.append("    </bpmndi:BPMNPlane>")
    out.append("  </bpmndi:BPMNDiagram>")
    out.append("</bpmn:definitions>")
    return "\n".join(out) + "\n"
