/* Process designer: bpmn-js Modeler (served locally) with a side form for motcua's properties —
   lane role, step duration, the decision a gateway's flow tests — and server-side validation whose
   problems are pinned on the diagram. Saving creates a new draft version. */
(function () {
  "use strict";
  var host = document.getElementById("canvas");
  if (!host || !window.BpmnJS) { return; }
  var SPIFF = {
    name: "SpiffWorkflow", prefix: "spiffworkflow", uri: "http://spiffworkflow.org/bpmn/schema/1.0/core",
    xml: { tagAlias: "lowerCase" },
    types: [
      { name: "Properties", superClass: ["Element"],
        properties: [{ name: "properties", type: "Property", isMany: true }] },
      { name: "Property", properties: [{ name: "name", isAttr: true, type: "String" },
                                       { name: "value", isAttr: true, type: "String" }] }
    ]
  };
  var modeler = new window.BpmnJS({ container: host, moddleExtensions: { spiffworkflow: SPIFF } });
  window.motcuaModeler = modeler;  // for keyboard-free automation in tests and for power users' console
  var csrf = document.querySelector("meta[name=csrf-token]").content;
  var panel = document.getElementById("props");
  var problemsList = document.getElementById("problems");
  var statusLine = document.getElementById("status");
  var overlayIds = [];

  function getProp(bo, name) {
    var ext = bo.extensionElements;
    if (!ext) { return ""; }
    for (var i = 0; i < ext.values.length; i++) {
      var v = ext.values[i];
      if (v.$type === "spiffworkflow:Properties") {
        var found = (v.properties || []).filter(function (p) { return p.name === name; })[0];
        if (found) { return found.value || ""; }
      }
    }
    return "";
  }

  function setProp(element, name, value) {
    var moddle = modeler.get("moddle");
    var bo = element.businessObject;
    var ext = bo.extensionElements || moddle.create("bpmn:ExtensionElements", { values: [] });
    var props = ext.values.filter(function (v) { return v.$type === "spiffworkflow:Properties"; })[0];
    if (!props) { props = moddle.create("spiffworkflow:Properties", { properties: [] }); ext.values.push(props); }
    props.properties = (props.properties || []).filter(function (p) { return p.name !== name; });
    if (value) { props.properties.push(moddle.create("spiffworkflow:Property", { name: name, value: value })); }
    modeler.get("modeling").updateProperties(element, { extensionElements: ext });
  }

  function decisionOf(bo) {
    var body = bo.conditionExpression && bo.conditionExpression.body || "";
    var m = /decision\s*==\s*["']([^"']+)["']/.exec(body);
    return m ? m[1] : "";
  }

  function field(label, id, value, onChange, options) {
    var wrap = document.createElement("div");
    var l = document.createElement("label"); l.htmlFor = id; l.textContent = label; wrap.appendChild(l);
    var input;
    if (options) {
      input = document.createElement("select");
      [""].concat(options).forEach(function (o) {
        // an option is a value, or [value, label]
        var value = Array.isArray(o) ? o[0] : o, text = Array.isArray(o) ? o[1] : o;
        var opt = document.createElement("option"); opt.value = value; opt.textContent = text || "—"; input.appendChild(opt);
      });
    } else { input = document.createElement("input"); }
    input.id = id; input.value = value || "";
    input.addEventListener("change", function () { onChange(input.value.trim()); });
    wrap.appendChild(input);
    panel.appendChild(wrap);
  }

  function showProps(element) {
    panel.innerHTML = "";
    if (!element) { panel.textContent = "Chọn một phần tử trên sơ đồ."; return; }
    var bo = element.businessObject;
    var modeling = modeler.get("modeling");
    var title = document.createElement("p"); title.className = "muted";
    title.textContent = bo.$type.replace("bpmn:", "") + " · " + bo.id; panel.appendChild(title);
    field("Tên", "p-name", bo.name, function (v) { modeling.updateProperties(element, { name: v }); });
    if (bo.$type === "bpmn:UserTask") {
      field("Thời hạn xử lý (giờ làm việc: PT4H, ngày làm việc: P1D)", "p-duration", getProp(bo, "duration"),
            function (v) { setProp(element, "duration", v); });
    }
    if (bo.$type === "bpmn:Lane") {
      field("Vai trò", "p-role", getProp(bo, "role") || "", function (v) { setProp(element, "role", v); },
            JSON.parse(host.dataset.roles));
      // Liên thông: where the lane's role is held (empty: the unit that received the dossier).
      field("Đơn vị thực hiện", "p-unit", getProp(bo, "unit") || "", function (v) { setProp(element, "unit", v); },
            [["@receiving", "Đơn vị tiếp nhận hồ sơ"], ["@parent", "Đơn vị cấp trên của đơn vị tiếp nhận"]]
              .concat(JSON.parse(host.dataset.units)));
    }
    if (bo.$type === "bpmn:SequenceFlow" && bo.sourceRef && bo.sourceRef.$type === "bpmn:ExclusiveGateway") {
      field("Quyết định dẫn tới nhánh này (approve, return, request_supplement, refuse…)", "p-decision",
            decisionOf(bo), function (v) {
              var expr = v ? modeler.get("moddle").create("bpmn:FormalExpression", { body: 'decision == "' + v + '"' }) : undefined;
              modeling.updateProperties(element, { conditionExpression: expr });
            });
    }
  }

  function clearProblems() {
    var overlays = modeler.get("overlays");
    overlayIds.forEach(function (id) { overlays.remove(id); });
    overlayIds = [];
    problemsList.innerHTML = "";
  }

  function showProblems(problems) {
    clearProblems();
    var overlays = modeler.get("overlays");
    var registry = modeler.get("elementRegistry");
    problems.forEach(function (p) {
      var li = document.createElement("li");
      li.className = "problem-" + p.severity;
      li.textContent = (p.element_id ? p.element_id + ": " : "") + (p.message_vi || p.message);
      li.title = p.message + " (" + p.code + ")";
      problemsList.appendChild(li);
      if (p.element_id && registry.get(p.element_id)) {
        var badge = document.createElement("div");
        badge.className = "problem-badge"; badge.title = p.message_vi || p.message; badge.textContent = "!";
        overlayIds.push(overlays.add(p.element_id, { position: { top: -10, right: 10 }, html: badge }));
      }
    });
  }

  function post(url, body) {
    return fetch(url, { method: "POST", credentials: "same-origin",
                        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
                        body: JSON.stringify(body) })
      .then(function (r) { return r.json().then(function (data) { return { status: r.status, data: data }; }); });
  }

  function withXml(fn) { return modeler.saveXML({ format: true }).then(function (r) { return fn(r.xml); }); }

  document.getElementById("btn-check").addEventListener("click", function () {
    withXml(function (xml) { return post(host.dataset.checkUrl, { bpmn: xml }); }).then(function (r) {
      showProblems(r.data.problems || []);
      statusLine.textContent = r.data.valid ? "Hợp lệ: có thể lưu thành phiên bản mới." : "Còn lỗi, xem danh sách và dấu ! trên sơ đồ.";
    });
  });
  document.getElementById("btn-save").addEventListener("click", function () {
    var notes = document.getElementById("notes").value;
    withXml(function (xml) { return post(host.dataset.saveUrl, { bpmn: xml, notes: notes }); }).then(function (r) {
      if (r.status === 201) {
        clearProblems();
        statusLine.textContent = "Đã lưu bản nháp phiên bản " + r.data.number + ". Quản trị viên công bố phiên bản này.";
      } else {
        showProblems(r.data.errors || []);
        statusLine.textContent = r.data.detail || "Không lưu được.";
      }
    });
  });
  document.getElementById("file").addEventListener("change", function (e) {
    var file = e.target.files[0];
    if (!file) { return; }
    file.text().then(function (xml) { return modeler.importXML(xml); })
      .then(function () { modeler.get("canvas").zoom("fit-viewport"); statusLine.textContent = "Đã mở tệp " + file.name + "."; })
      .catch(function (err) { statusLine.textContent = "Không mở được tệp: " + err.message; });
  });

  modeler.on("selection.changed", function (e) { showProps(e.newSelection[0]); });
  fetch(host.dataset.xmlUrl, { credentials: "same-origin" })
    .then(function (r) { return r.text(); })
    .then(function (xml) { return modeler.importXML(xml); })
    .then(function () { modeler.get("canvas").zoom("fit-viewport"); host.dataset.ready = "1"; showProps(null); });
})();
