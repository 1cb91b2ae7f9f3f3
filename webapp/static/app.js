/* Progressive enhancement only: every page works without it. */
(function () {
  "use strict";
  // Disable a submit button after the first click (no double submits on slow networks).
  // A form with several buttons (receive, receive and forward, guidance, refusal) disables the one pressed
  // and refuses a second submission of the form.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var button = event.submitter && event.submitter.hasAttribute("data-once") ? event.submitter
      : form.querySelector("button[data-once]");
    if (button) {
      if (form.dataset.sent) { event.preventDefault(); return; }
      form.dataset.sent = "1";
      setTimeout(function () { button.disabled = true; button.textContent = "Đang gửi…"; }, 0);
    }
  });
  // Focus the error summary so screen readers and keyboards land on it.
  var summary = document.getElementById("error-summary");
  if (summary) { summary.focus(); }

  // Print a form shown in a frame of the page (the receipt after reception, a counter notice).
  document.querySelectorAll("[data-print-frame]").forEach(function (button) {
    var frame = document.querySelector("iframe[name='" + button.dataset.printFrame + "']");
    if (!frame) { return; }
    button.hidden = false;
    button.addEventListener("click", function () { frame.contentWindow.focus(); frame.contentWindow.print(); });
  });

  var picker = document.querySelector("[data-picker]");
  if (picker) { procedurePicker(picker); }

  // The dossier's own BPMN, with finished, current and late steps marked.
  window.addEventListener("load", function () {
    if (!window.BpmnJS) { return; }
    document.querySelectorAll(".bpmn-diagram").forEach(showDiagram);
  });

  function showDiagram(host) {
    var markers = JSON.parse(host.dataset.markers || "{}");
    var viewer = new window.BpmnJS({ container: host });
    fetch(host.dataset.xml, { credentials: "same-origin" })
      .then(function (r) { return r.text(); })
      .then(function (xml) { return viewer.importXML(xml); })
      .then(function () {
        var canvas = viewer.get("canvas");
        var registry = viewer.get("elementRegistry");
        Object.keys(markers).forEach(function (kind) {
          (markers[kind] || []).forEach(function (id) { if (registry.get(id)) { canvas.addMarker(id, kind); } });
        });
        canvas.zoom("fit-viewport");
        host.dataset.ready = "1";
      })
      .catch(function (err) { host.textContent = "Không hiển thị được sơ đồ: " + err.message; });
  }

  // Search ignores diacritics, like engine/text.fold: "ho kinh doanh" finds "hộ kinh doanh".
  function fold(text) {
    return (text || "").normalize("NFD").replace(/[\u0300-\u036f]/g, "").replace(/đ/g, "d").replace(/Đ/g, "D")
      .toLowerCase().trim();
  }

  // The reception desk: the procedure search becomes a combobox listing the procedures accepting today as
  // one types; choosing one (list, select or Enter) fills the form from a small JSON answer, no reload.
  function procedurePicker(picker) {
    var data = null;  // the procedures accepting today, fetched once; until then the search form works as without JS
    fetch(picker.dataset.list, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.json(); })
      .then(function (list) {
        data = list;
        if (document.activeElement === input && input.value) { render(); }
      })
      .catch(function () { data = null; });
    var input = document.getElementById("tim");
    var list = document.getElementById("tim-ket-qua");
    var status = document.getElementById("tim-trang-thai");
    var select = document.getElementById("thu-tuc");
    var form = document.getElementById("ho-so");
    var shown = [], active = -1;
    input.setAttribute("role", "combobox");
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-expanded", "false");
    input.setAttribute("aria-controls", list.id);

    function close() {
      list.hidden = true;
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
      active = -1;
    }
    function render() {
      if (!data) { return; }
      var words = fold(input.value).split(/\s+/).filter(Boolean);
      shown = words.length ? data.filter(function (p) {
        return words.every(function (w) { return p.key.indexOf(w) >= 0; });
      }).slice(0, 30) : [];
      list.textContent = "";
      shown.forEach(function (p, i) {
        var li = document.createElement("li");
        li.id = "tim-lc-" + i;
        li.setAttribute("role", "option");
        li.setAttribute("aria-selected", "false");
        var code = document.createElement("span");
        code.className = "code";
        code.textContent = p.code;
        li.appendChild(code);
        li.appendChild(document.createTextNode(" · " + p.name));
        li.addEventListener("mousedown", function (e) { e.preventDefault(); choose(p.code); });
        list.appendChild(li);
      });
      active = -1;
      list.hidden = !shown.length;
      input.setAttribute("aria-expanded", shown.length ? "true" : "false");
      input.removeAttribute("aria-activedescendant");
      status.textContent = !words.length ? "" : shown.length ? shown.length + " thủ tục phù hợp" : "Không có thủ tục phù hợp";
    }
    function highlight(i) {
      if (!shown.length) { return; }
      active = (i + shown.length) % shown.length;
      Array.prototype.forEach.call(list.children, function (li, j) {
        li.setAttribute("aria-selected", j === active ? "true" : "false");
      });
      var li = list.children[active];
      input.setAttribute("aria-activedescendant", li.id);
      li.scrollIntoView({ block: "nearest" });
    }
    input.addEventListener("input", render);
    input.addEventListener("keydown", function (e) {
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        if (list.hidden) { render(); }
        highlight(active < 0 && e.key === "ArrowUp" ? -1 : active + (e.key === "ArrowDown" ? 1 : -1));
        e.preventDefault();
      } else if (e.key === "Enter" && !list.hidden && shown.length) {
        e.preventDefault();
        choose(shown[active >= 0 ? active : 0].code);
      } else if (e.key === "Escape" && !list.hidden) {
        e.preventDefault();
        close();
      }
    });
    input.addEventListener("blur", close);
    input.form.addEventListener("submit", function (e) {
      if (!data) { return; }
      e.preventDefault();
      render();
      if (shown.length === 1) { choose(shown[0].code); }
    });
    select.addEventListener("change", function () { if (select.value) { choose(select.value); } });
    document.getElementById("chon-thu-tuc").addEventListener("submit", function (e) {
      e.preventDefault();
      if (select.value) { choose(select.value); }
    });

    function choose(code) {
      close();
      var found = (data || []).filter(function (p) { return p.code === code; })[0];
      if (found) { input.value = found.code + " · " + found.name; }
      select.value = code;
      status.textContent = "Đang tải thủ tục " + code + "…";
      form.setAttribute("aria-busy", "true");
      fetch(picker.dataset.details.replace("__MA__", encodeURIComponent(code)),
        { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.json(); })
        .then(fill)
        .catch(function () { window.location.href = "?thu-tuc=" + encodeURIComponent(code); });
    }

    function fromTemplate(id, code) {
      var node = document.getElementById(id).content.firstElementChild.cloneNode(true);
      [node].concat(Array.prototype.slice.call(node.querySelectorAll("*"))).forEach(function (el) {
        ["id", "for", "name", "value", "data-code"].forEach(function (attr) {
          var v = el.getAttribute(attr);
          if (v && v.indexOf("__MA__") >= 0) { el.setAttribute(attr, v.split("__MA__").join(code)); }
        });
      });
      return node;
    }
    function fillRows(kind, template, components) {
      var body = form.querySelector("tbody[data-rows='" + kind + "']");
      body.textContent = "";
      components.forEach(function (c) {
        var row = fromTemplate(template, c.code);
        row.querySelectorAll("[data-fill='name']").forEach(function (el) { el.textContent = c.name; });
        row.querySelectorAll("[data-fill='copies']").forEach(function (el) { el.textContent = c.copies; });
        if (kind === "components" && c.required) {
          var name = row.querySelector("[data-fill='name']");
          name.parentNode.insertBefore(document.createTextNode(" "), name.nextSibling);
          name.parentNode.appendChild(document.getElementById("mau-thanh-phan-bat-buoc").content.cloneNode(true));
        }
        body.appendChild(row);
      });
    }
    function fill(d) {
      form.querySelectorAll("[data-procedure]").forEach(function (el) {
        var value = d[el.dataset.procedure] || "";
        if (el.tagName === "INPUT") { el.value = value; } else { el.textContent = value; }
      });
      fillRows("components", "mau-thanh-phan", d.components);
      fillRows("missing", "mau-thieu", d.components);
      form.hidden = false;
      form.removeAttribute("aria-busy");
      if (window.history && history.replaceState) {
        history.replaceState(null, "", window.location.pathname + "?thu-tuc=" + encodeURIComponent(d.code));
      }
      status.textContent = "Đã chọn " + d.code + " · " + d.name + ": nhập thông tin chủ hồ sơ.";
      document.getElementById("f-applicant-name").focus();
    }

    // The ID number's hint follows the document type chosen.
    var idType = document.getElementById("f-applicant-id_type");
    var idNumber = document.getElementById("f-applicant-id_number");
    if (idType && idNumber) {
      idType.addEventListener("change", function () {
        idNumber.setAttribute("pattern", idType.selectedOptions[0].dataset.pattern || "");
      });
    }
  }
})();
