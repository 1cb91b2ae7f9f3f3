/* Process designer: bpmn-js Modeler (served locally) with a side form for motcua's properties —
   lane role, step duration (as hours or days of work), the result document a step records, the
   decision a gateway's flow tests — and server-side validation whose problems name the element and
   take you to it. Saving creates a new draft version; leaving with unsaved changes asks first. */
(function () {
  "use strict";

  // --- durations: ISO 8601 in the file, words on the screen (the same words as webapp/i18n.py duration) ---
  var ISO = /^P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?)?$/;
  var MAX_AMOUNT = 10000;

  function parseIso(text) {
    var t = String(text || "").trim().toUpperCase();
    var m = ISO.exec(t);
    if (!m || t === "P" || t === "PT" || /T$/.test(t)) { return null; }
    return { days: +(m[1] || 0), hours: +(m[2] || 0), minutes: +(m[3] || 0) };
  }
  function plain(value) { return value.toFixed(3).replace(/0+$/, "").replace(/\.$/, ""); }
  function number(value) { return plain(value).replace(".", ","); }  // Vietnamese decimal comma
  function words(text) {
    if (!text || !String(text).trim()) { return "Chưa có thời hạn"; }
    var d = parseIso(text);
    if (!d) { return "«" + text + "» (thời hạn không đúng dạng)"; }
    var parts = [];
    if (d.days) { parts.push(number(d.days) + " ngày"); }
    if (d.hours) { parts.push(number(d.hours) + " giờ"); }
    if (d.minutes) { parts.push(number(d.minutes) + " phút"); }
    return (parts.length ? parts.join(" ") : "0 giờ") + " làm việc";
  }
  /* The editor's number and unit for a stored value: whole days stay days, anything else is hours
     (a working day being `dayHours` long). */
  function editorValue(text, dayHours) {
    var d = parseIso(text);
    if (!d) { return { amount: "", unit: "H" }; }
    if (d.days && !d.hours && !d.minutes) { return { amount: number(d.days), unit: "D" }; }
    return { amount: number(d.days * dayHours + d.hours + d.minutes / 60), unit: "H" };
  }
  /* What the person typed, as an ISO value; null when it is not a positive number below MAX_AMOUNT.
     A pasted ISO value (from another modeler's file) is taken as it is. */
  function isoFromInput(amountText, unit) {
    var raw = String(amountText || "").trim();
    if (parseIso(raw) && /^P/i.test(raw)) { return raw.toUpperCase(); }
    var s = raw.replace(",", ".");
    if (!/^\d+(\.\d+)?$/.test(s)) { return null; }
    var n = parseFloat(s);
    if (!(n > 0) || n >= MAX_AMOUNT) { return null; }
    return unit === "D" ? "P" + plain(n) + "D" : "PT" + plain(n) + "H";
  }
  window.motcuaDuration = { words: words, editorValue: editorValue, isoFromInput: isoFromInput };

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
  var dayHours = parseFloat(host.dataset.dayHours) || 8;
  var panel = document.getElementById("props");
  var problemsList = document.getElementById("problems");
  var statusLine = document.getElementById("status");
  var dirtyLine = document.getElementById("dirty");
  var notesInput = document.getElementById("notes");
  var overlayIds = [];

  // --- unsaved changes: the command stack's depth against the depth at the last save ---------------
  var depth = 0, savedDepth = 0, fileOpened = false, notesChanged = false, leaving = false;
  var LEAVE = "Sơ đồ có thay đổi chưa lưu. Nếu rời trang, các thay đổi này sẽ mất. Vẫn rời trang?";

  function dirty() { return depth !== savedDepth || fileOpened || notesChanged; }
  function showDirty() { if (dirtyLine) { dirtyLine.hidden = !dirty(); } }
  modeler.on("commandStack.changed", function (e) {
    if (e.trigger === "execute") {
      if (depth < savedDepth) { savedDepth = -1; }  // the saved state was undone and is now overwritten
      depth += 1;
    } else if (e.trigger === "undo") {
      depth -= 1;
    } else if (e.trigger === "redo") {
      depth += 1;
    }
    if (e.trigger === "undo" || e.trigger === "redo") {  // the panel shows the values the diagram has now
      showProps(modeler.get("selection").get()[0]);
    }
    showDirty();
  });
  modeler.on("import.done", function () { depth = 0; savedDepth = 0; });  // importing clears the stack silently
  notesInput.addEventListener("input", function () { notesChanged = true; showDirty(); });
  function markSaved(atDepth) { savedDepth = atDepth; fileOpened = false; notesChanged = false; showDirty(); }

  window.addEventListener("beforeunload", function (e) {
    if (leaving || !dirty()) { return; }
    e.preventDefault();
    e.returnValue = "";  // older browsers need a value to show their own "leave site?" prompt
  });
  // In-app links and forms (the menu, search, log-out, the upload below) ask in Vietnamese first;
  // capture phase, so a refused submit never reaches app.js's double-submit guard.
  document.addEventListener("click", function (e) {
    var a = e.target.closest && e.target.closest("a[href]");
    if (!a || e.defaultPrevented || e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) { return; }
    if (a.target === "_blank" || a.getAttribute("href").charAt(0) === "#" || !dirty()) { return; }
    if (window.confirm(LEAVE)) { leaving = true; } else { e.preventDefault(); }
  }, true);
  document.addEventListener("submit", function (e) {
    if (!dirty()) { return; }
    if (window.confirm(LEAVE)) { leaving = true; return; }
    e.preventDefault();
    e.stopImmediatePropagation();
  }, true);
  window.addEventListener("pageshow", function () { leaving = false; });

  // --- motcua's properties -----------------------------------------------------------------------
  /* They live in `spiffworkflow:properties` (described to bpmn-js above) or, in files from Camunda
     Modeler, `camunda:properties` (not described here, so bpmn-js keeps it as a generic element whose
     properties are its $children). Both are read and written alike, as engine/workflow/bpmn_xml.py
     properties() reads any namespace, where a later property of the same name wins. */
  function localName(type) { return String(type || "").split(":").pop().toLowerCase(); }
  function isContainer(v) { return localName(v.$type) === "properties"; }
  function isSpiff(container) { return container.$type === "spiffworkflow:Properties"; }
  function itemsOf(container) { return (isSpiff(container) ? container.properties : container.$children) || []; }
  function named(name) { return function (p) { return localName(p.$type) === "property" && p.name === name; }; }

  function getProp(bo, name) {
    var value = "";
    var values = bo.extensionElements && bo.extensionElements.values || [];
    values.filter(isContainer).forEach(function (container) {
      itemsOf(container).filter(named(name)).forEach(function (p) { value = p.value || ""; });
    });
    return value;
  }

  function newItem(container, name, value) {
    var moddle = modeler.get("moddle");
    if (isSpiff(container)) { return moddle.create("spiffworkflow:Property", { name: name, value: value }); }
    return moddle.createAny(container.$type.split(":")[0] + ":property", container.$descriptor.ns.uri,
                            { name: name, value: value });
  }

  // A new container holding `items`, with the old one's other attributes.
  function copyContainer(container, items) {
    var moddle = modeler.get("moddle"), copy;
    if (isSpiff(container)) {
      copy = moddle.create("spiffworkflow:Properties", { properties: items });
      Object.keys(container.$attrs || {}).forEach(function (k) { copy.$attrs[k] = container.$attrs[k]; });
    } else {
      copy = moddle.createAny(container.$type, container.$descriptor.ns.uri, {});
      Object.keys(container).forEach(function (k) { if (k.charAt(0) !== "$") { copy[k] = container[k]; } });
      copy.$children = items;
    }
    items.forEach(function (p) { if (!p.$parent) { p.$parent = copy; } });
    return copy;
  }

  /* Writes (a value) or removes (empty) one property, as one command of the command stack. The old
     extension elements are not changed in place but replaced by a new copy, so undo puts them back as
     they were. The value goes where the property already is (its place, its namespace), else into the
     first container there is, else into a new spiffworkflow:properties; a copy of it anywhere else goes. */
  function setProp(element, name, value) {
    var moddle = modeler.get("moddle");
    var bo = element.businessObject;
    var old = bo.extensionElements && bo.extensionElements.values || [];
    var target = -1, i;
    for (i = 0; i < old.length; i++) { if (isContainer(old[i]) && itemsOf(old[i]).some(named(name))) { target = i; } }
    for (i = 0; target < 0 && i < old.length; i++) { if (isContainer(old[i])) { target = i; } }
    var values = [];
    old.forEach(function (v, at) {
      var before = isContainer(v) ? itemsOf(v) : [];
      if (at !== target && !before.some(named(name))) { values.push(v); return; }
      var last = -1, items = [];
      before.forEach(function (p, j) { if (named(name)(p)) { last = j; } });
      before.forEach(function (p, j) {
        if (!named(name)(p)) { items.push(p); } else if (at === target && j === last && value) { items.push(newItem(v, name, value)); }
      });
      if (at === target && value && last < 0) { items.push(newItem(v, name, value)); }
      if (items.length || !before.length) { values.push(copyContainer(v, items)); }  // one emptied here goes
    });
    if (target < 0 && value) {
      values.push(moddle.create("spiffworkflow:Properties", {
        properties: [moddle.create("spiffworkflow:Property", { name: name, value: value })] }));
    }
    var ext;
    if (values.length) {
      ext = moddle.create("bpmn:ExtensionElements", { values: values });
      ext.$parent = bo;
      values.forEach(function (v) { if (!v.$parent || old.indexOf(v) < 0) { v.$parent = ext; } });
    }
    modeler.get("modeling").updateProperties(element, { extensionElements: ext });
  }

  /* A step's result document (docs/bpmn-conventions.md, "Result documents"): what the step must record
     when it approves. Read as engine/workflow/bpmn_xml.py result_values reads it: values separated by
     commas or spaces, in any case; "file number" is what the panel writes for both. */
  var RESULT_CHOICES = [
    ["", "Không ghi kết quả",
     "Bước này không phải ghi nhận văn bản kết quả khi chuyển tiếp."],
    ["file", "Đính kèm văn bản ký số (PDF)",
     "Khi đồng ý chuyển tiếp, người thực hiện bước phải đính kèm văn bản kết quả đã ký số (tệp PDF, tối đa 20 MB)."],
    ["number", "Ghi số và ngày ký văn bản",
     "Khi đồng ý chuyển tiếp, người thực hiện bước phải ghi số văn bản kết quả và ngày ký."],
    ["file number", "Cả hai",
     "Khi đồng ý chuyển tiếp, người thực hiện bước phải đính kèm văn bản kết quả đã ký số (tệp PDF) và ghi số, " +
     "ngày ký của văn bản."]
  ];
  function resultValues(text) {
    var seen = [];
    String(text || "").split(/[\s,;]+/).forEach(function (v) {
      v = v.toLowerCase();
      if (v && seen.indexOf(v) < 0) { seen.push(v); }
    });
    return seen;
  }
  // The panel's choice for a stored value; null for a value it does not know (shown as it is).
  function resultChoice(text) {
    var values = resultValues(text);
    if (values.some(function (v) { return v !== "file" && v !== "number"; })) { return null; }
    return values.length === 2 ? "file number" : (values[0] || "");
  }

  function resultField(element) {
    var stored = getProp(element.businessObject, "result"), choice = resultChoice(stored);
    var wrap = el("div", { className: "result-field" });
    wrap.appendChild(el("label", { htmlFor: "p-result", textContent: "Kết quả của bước" }));
    var select = el("select", { id: "p-result" });
    select.setAttribute("aria-describedby", "p-result-help");
    options(select, RESULT_CHOICES.map(function (c) { return [c[0], c[1]]; }), false);
    if (choice === null) {  // drawn in another tool, or typed in the file: kept, and said to be refused
      select.appendChild(el("option", { value: stored, textContent: "«" + stored + "» (giá trị không hợp lệ)" }));
    }
    select.value = choice === null ? stored : choice;
    var help = el("p", { id: "p-result-help", className: "muted field-help" });
    function say(value) {
      var known = RESULT_CHOICES.filter(function (c) { return c[0] === value; })[0];
      help.className = known ? "muted field-help" : "field-error field-help";
      help.textContent = known ? known[2] : "Giá trị «" + value + "» trong tệp không hợp lệ: quy trình chưa lưu " +
        "được cho tới khi chọn một trong các lựa chọn trên.";
    }
    say(select.value);
    select.addEventListener("change", function () {
      var value = select.value;
      if (value !== getProp(element.businessObject, "result")) { setProp(element, "result", value); }
      say(value);
    });
    wrap.appendChild(select);
    wrap.appendChild(help);
    panel.appendChild(wrap);
  }

  function decisionOf(bo) {
    var body = bo.conditionExpression && bo.conditionExpression.body || "";
    var m = /decision\s*==\s*["']([^"']+)["']/.exec(body);
    return m ? m[1] : "";
  }

  function el(tag, props) {
    var node = document.createElement(tag);
    Object.keys(props || {}).forEach(function (k) { node[k] = props[k]; });
    return node;
  }

  function options(select, list, withEmpty) {
    (withEmpty ? [""] : []).concat(list).forEach(function (o) {
      // an option is a value, or [value, label]
      var value = Array.isArray(o) ? o[0] : o, text = Array.isArray(o) ? o[1] : o;
      select.appendChild(el("option", { value: value, textContent: text || "—" }));
    });
  }

  function field(label, id, value, onChange, list) {
    var wrap = el("div");
    wrap.appendChild(el("label", { htmlFor: id, textContent: label }));
    var input;
    if (list) { input = el("select"); options(input, list, true); } else { input = el("input"); }
    input.id = id; input.value = value || "";
    input.addEventListener("change", function () { onChange(input.value.trim()); });
    wrap.appendChild(input);
    panel.appendChild(wrap);
  }

  /* A step's duration: a number and a unit (working hours / working days); the ISO value is written
     to the file, the words are what the person reads. */
  function durationField(element) {
    var current = getProp(element.businessObject, "duration");
    var start = editorValue(current, dayHours);
    var wrap = el("div", { className: "duration-field" });
    wrap.appendChild(el("label", { htmlFor: "p-duration", textContent: "Thời hạn xử lý" }));
    var row = el("div", { className: "duration-inputs" });
    var amount = el("input", { id: "p-duration", inputMode: "decimal", autocomplete: "off", value: start.amount });
    amount.setAttribute("aria-describedby", "p-duration-words p-duration-error");
    var unitLabel = el("label", { htmlFor: "p-duration-unit", className: "sr", textContent: "Đơn vị thời hạn" });
    var unit = el("select", { id: "p-duration-unit" });
    options(unit, [["H", "giờ làm việc"], ["D", "ngày làm việc"]], false);
    unit.value = start.unit;
    row.appendChild(amount); row.appendChild(unitLabel); row.appendChild(unit);
    wrap.appendChild(row);
    var now = el("p", { id: "p-duration-words", className: "muted" });
    var error = el("p", { id: "p-duration-error", className: "field-error", hidden: true });
    wrap.appendChild(now); wrap.appendChild(error);
    function say(value) { now.textContent = "Thời hạn hiện tại: " + words(value); }
    say(current);
    function commit() {
      var iso = isoFromInput(amount.value, unit.value);
      if (!iso) {
        error.textContent = "Nhập số " + (unit.value === "D" ? "ngày" : "giờ") +
          " làm việc: một số lớn hơn 0 và nhỏ hơn 10.000, ví dụ 4 hoặc 1,5.";
        error.hidden = false; amount.setAttribute("aria-invalid", "true");
        return;
      }
      error.hidden = true; amount.removeAttribute("aria-invalid");
      if (iso !== getProp(element.businessObject, "duration")) { setProp(element, "duration", iso); }
      var shown = editorValue(iso, dayHours);
      amount.value = shown.amount; unit.value = shown.unit;
      say(iso);
    }
    amount.addEventListener("change", commit);
    unit.addEventListener("change", function () { if (amount.value.trim()) { commit(); } });
    panel.appendChild(wrap);
  }

  function showProps(element) {
    panel.innerHTML = "";
    if (!element) { panel.textContent = "Chọn một phần tử trên sơ đồ."; return; }
    var bo = element.businessObject;
    var modeling = modeler.get("modeling");
    panel.appendChild(el("p", { className: "muted", textContent: kindOf(bo) }));
    field("Tên", "p-name", bo.name, function (v) { modeling.updateProperties(element, { name: v }); });
    if (bo.$type === "bpmn:UserTask") { durationField(element); resultField(element); }
    if (bo.$type === "bpmn:Lane") {
      field("Vai trò", "p-role", getProp(bo, "role") || "", function (v) { setProp(element, "role", v); },
            JSON.parse(host.dataset.roles));
      // Liên thông: where the lane's role is held (empty: the unit that received the dossier).
      field("Đơn vị thực hiện", "p-unit", getProp(bo, "unit") || "", function (v) { setProp(element, "unit", v); },
            [["@receiving", "Đơn vị tiếp nhận hồ sơ"], ["@parent", "Đơn vị cấp trên của đơn vị tiếp nhận"]]
              .concat(JSON.parse(host.dataset.units)));
    }
    if (bo.$type === "bpmn:SequenceFlow" && bo.sourceRef && bo.sourceRef.$type === "bpmn:ExclusiveGateway") {
      // The button that takes this branch; a value drawn in another tool keeps its own option.
      var decisions = JSON.parse(host.dataset.decisions), current = decisionOf(bo);
      if (current && !decisions.some(function (d) { return d[0] === current; })) { decisions.push([current, current]); }
      field("Quyết định (nút bấm) dẫn tới nhánh này", "p-decision", current, function (v) {
        var expr = v ? modeler.get("moddle").create("bpmn:FormalExpression", { body: 'decision == "' + v + '"' }) : undefined;
        modeling.updateProperties(element, { conditionExpression: expr });
      }, decisions);
    }
  }

  // --- problems: named as a person names the element, and a click away from it ----------------------
  function kindOf(bo) {  // the same words as webapp/designer.py element_labels
    var t = bo.$type.replace("bpmn:", "");
    if (t === "Lane") { return "Làn"; }
    if (t === "SequenceFlow") { return "Nhánh"; }
    if (t === "Participant") { return "Vùng quy trình"; }
    if (t === "Process") { return "Quy trình"; }
    if (/Gateway$/.test(t)) { return "Cổng rẽ"; }
    if (/Event$/.test(t)) { return "Sự kiện"; }
    if (t === "Task" || /Task$/.test(t) || t === "SubProcess" || t === "CallActivity") { return "Bước"; }
    return "Phần tử";
  }
  function nameOf(bo) { return (bo && bo.name || "").trim(); }
  function labelOf(element) {
    var bo = element.businessObject, kind = kindOf(bo), name = nameOf(bo);
    var source = nameOf(bo.sourceRef), target = nameOf(bo.targetRef);
    if (name && kind === "Nhánh" && source) { return kind + " «" + name + "» sau «" + source + "»"; }
    if (name) { return kind + " «" + name + "»"; }
    if (kind === "Nhánh" && source && target) { return kind + " «" + source + "» → «" + target + "»"; }
    return kind + " chưa đặt tên";
  }

  function reveal(element) {
    var canvas = modeler.get("canvas");
    modeler.get("selection").select(element);
    canvas.scrollToElement(element, { top: 60, bottom: 60, left: paletteRight() + 40, right: 60 });
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
      var element = p.element_id ? registry.get(p.element_id) : null;
      var text = (element ? labelOf(element) + ": " : "") + (p.message_vi || p.message) +
        (p.severity === "warning" ? " (cảnh báo, vẫn lưu được)" : "");
      var li = el("li", { className: "problem-" + p.severity });
      if (element) {
        var go = el("button", { type: "button", className: "problem-link", textContent: text,
                                title: "Chọn phần tử này trên sơ đồ" });
        go.addEventListener("click", function () { reveal(element); });
        li.appendChild(go);
        var badge = el("div", { className: "problem-badge", title: text, textContent: "!" });
        badge.addEventListener("click", function () { reveal(element); });
        overlayIds.push(overlays.add(element, { position: { top: -10, right: 10 }, html: badge }));
      } else {
        li.textContent = text;
      }
      problemsList.appendChild(li);
    });
  }

  // --- the initial view: the whole diagram, right of the palette ----------------------------------
  function paletteRight() {
    var palette = host.querySelector(".djs-palette");
    if (!palette) { return 0; }
    return palette.getBoundingClientRect().right - host.getBoundingClientRect().left;
  }
  function fitDiagram() {
    var canvas = modeler.get("canvas");
    canvas.zoom("fit-viewport");
    var vb = canvas.viewbox(), inner = vb.inner, outer = vb.outer;
    if (!inner.width || !inner.height) { return; }
    var left = paletteRight() + 16, margin = 16;
    var scale = Math.min((outer.width - left - margin) / inner.width, (outer.height - 2 * margin) / inner.height, 1);
    canvas.viewbox({ x: inner.x - left / scale, y: inner.y - margin / scale,
                     width: outer.width / scale, height: outer.height / scale });
  }

  // --- check, save, open ---------------------------------------------------------------------------
  function post(url, body) {
    return fetch(url, { method: "POST", credentials: "same-origin",
                        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
                        body: JSON.stringify(body) })
      .then(function (r) { return r.json().then(function (data) { return { status: r.status, data: data }; }); });
  }
  function unreachable() {
    statusLine.textContent = "Không gửi được tới máy chủ (mất kết nối hoặc hết phiên đăng nhập). Sơ đồ vẫn còn " +
      "trên trang: thử lại sau, hoặc đăng nhập ở thẻ khác rồi bấm lại.";
  }
  function busy(button, on) { button.disabled = on; }

  function withXml(fn) { return modeler.saveXML({ format: true }).then(function (r) { return fn(r.xml); }); }

  var checkButton = document.getElementById("btn-check"), saveButton = document.getElementById("btn-save");
  checkButton.addEventListener("click", function () {
    busy(checkButton, true);
    withXml(function (xml) { return post(host.dataset.checkUrl, { bpmn: xml }); }).then(function (r) {
      showProblems(r.data.problems || []);
      statusLine.textContent = r.data.valid ? "Hợp lệ: có thể lưu thành phiên bản mới." :
        "Còn lỗi: bấm vào từng lỗi trong danh sách để tới phần tử đó trên sơ đồ.";
    }).catch(unreachable).then(function () { busy(checkButton, false); });
  });
  saveButton.addEventListener("click", function () {
    busy(saveButton, true);
    var notes = notesInput.value, savingDepth = depth;  // edits made while the request runs stay unsaved
    withXml(function (xml) { return post(host.dataset.saveUrl, { bpmn: xml, notes: notes }); }).then(function (r) {
      if (r.status === 201) {
        markSaved(savingDepth);
        showProblems(r.data.problems || []);  // warnings only: the version is saved
        statusLine.textContent = "Đã lưu bản nháp phiên bản " + r.data.number + ". Quản trị viên công bố phiên bản này.";
      } else {
        showProblems(r.data.errors || []);
        statusLine.textContent = r.data.detail || "Không lưu được.";
      }
    }).catch(unreachable).then(function () { busy(saveButton, false); });
  });
  document.getElementById("file").addEventListener("change", function (e) {
    var file = e.target.files[0];
    if (!file) { return; }
    file.text().then(function (xml) { return modeler.importXML(xml); })
      .then(function () {
        fileOpened = true; showDirty(); clearProblems(); fitDiagram();
        statusLine.textContent = "Đã mở tệp " + file.name + " (chưa lưu).";
      })
      .catch(function (err) { statusLine.textContent = "Không mở được tệp: " + err.message; });
  });

  modeler.on("selection.changed", function (e) { showProps(e.newSelection[0]); });
  fetch(host.dataset.xmlUrl, { credentials: "same-origin" })
    .then(function (r) {
      if (r.status === 404) { return modeler.createDiagram(); }  // a procedure without any version yet
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.text().then(function (xml) { return modeler.importXML(xml); });
    })
    .then(function () { fitDiagram(); markSaved(0); host.dataset.ready = "1"; showProps(null); })
    .catch(function () { statusLine.textContent = "Không tải được sơ đồ; tải lại trang hoặc mở một tệp .bpmn."; });
})();
