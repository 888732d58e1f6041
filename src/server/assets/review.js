// The review page from the keyboard: Enter accepts a field (saving a
// correction) and moves to the next unsure one; Alt+A approves, Alt+R
// rejects, Alt+P postpones, Alt+N opens the next document. Clicking a
// word on the page fills the field last focused. Every value is written
// into the page as text, never as markup.
(function () {
  "use strict";
  const review = document.querySelector(".review");
  if (!review) return;
  const job = review.dataset.job;
  const editable = review.dataset.editable === "true";
  let version = Number(review.dataset.version);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const message = document.getElementById("message");
  let lastField = null;

  function say(text, bad) {
    if (!message) return;
    message.textContent = text;
    message.classList.toggle("error", !!bad);
  }

  async function call(method, path, body) {
    const response = await fetch(path, {
      method: method,
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    return { ok: response.ok, status: response.status, data: data };
  }

  function fields() {
    return Array.from(document.querySelectorAll(".field input"));
  }

  function highlight(name) {
    document.querySelectorAll("rect.box.on").forEach(function (r) { r.classList.remove("on"); });
    document.querySelectorAll("rect.box").forEach(function (r) {
      if (r.dataset.field === name) {
        r.classList.add("on");
        r.scrollIntoView({ block: "nearest", behavior: "smooth" });
      }
    });
  }

  // The values as they are now, from the server's answer.
  function show(detail) {
    version = detail.review.version;
    review.dataset.version = String(version);
    const failures = document.getElementById("failures");
    if (failures) {
      failures.textContent = "";
      detail.view.failures.forEach(function (f) {
        const li = document.createElement("li");
        li.textContent = f.problem;
        failures.appendChild(li);
      });
      const ok = document.getElementById("checks-ok");
      if (ok) ok.hidden = detail.view.failures.length > 0;
    }
    detail.view.fields.forEach(function (f) {
      const box = document.querySelector('.field[data-name="' + CSS.escape(f.name) + '"]');
      if (!box) return;
      box.classList.toggle("corrected", f.corrected);
      box.classList.toggle("unsure", f.confidence < 1 && !f.corrected);
      const meter = box.querySelector("meter");
      if (meter) meter.value = f.confidence;
      const percent = box.querySelector(".confidence span");
      if (percent) percent.textContent = Math.round(f.confidence * 100) + " %";
      const input = box.querySelector("input");
      const value = f.value === null ? "" : (typeof f.value === "string" ? f.value : JSON.stringify(f.value));
      if (input && document.activeElement !== input) input.value = value;
      if (input) input.dataset.value = value;
      box.querySelector(".problem").textContent = "";
    });
  }

  function problems(data, fallback) {
    if (data && Array.isArray(data.details)) {
      data.details.forEach(function (d) {
        const box = document.querySelector('.field[data-name="' + CSS.escape(d.field) + '"]');
        if (box) box.querySelector(".problem").textContent = d.message;
      });
    }
    say((data && data.error) || fallback, true);
  }

  async function save(corrections, template) {
    const body = { version: version, corrections: corrections };
    if (template) body.template = template;
    const r = await call("PUT", "/api/v1/reviews/" + job, body);
    if (r.ok) {
      show(r.data);
      say("Saved.", false);
      return true;
    }
    if (r.status === 409) say((r.data && r.data.error) || "Someone else changed this review; reload the page.", true);
    else problems(r.data, "The values were not saved.");
    return false;
  }

  // The next unsure field below `after`: one pass down the list, so a
  // field left as it is is not come back to.
  function nextUnsure(after) {
    const list = fields();
    for (let i = list.indexOf(after) + 1; i < list.length; i++) {
      if (list[i].closest(".field").classList.contains("unsure")) return list[i];
    }
    return null;
  }

  async function accept(input) {
    const box = input.closest(".field");
    const ok = await save([{ field: box.dataset.name, value: input.value }]);
    if (!ok) return;
    const next = nextUnsure(input);
    if (next) next.focus();
    else {
      const approve = document.getElementById("approve");
      if (approve) approve.focus();
      say("The unsure fields are done: approve with Alt+A.", false);
    }
  }

  function lineRows() {
    return Array.from(document.querySelectorAll("#lines tbody tr")).map(function (tr) {
      const row = {};
      tr.querySelectorAll("input").forEach(function (cell) { row[cell.dataset.col] = cell.value; });
      return row;
    });
  }

  async function finish(action, extra) {
    const body = Object.assign({ version: version }, extra);
    const r = await call("POST", "/api/v1/reviews/" + job + "/" + action, body);
    if (r.ok) {
      say("Done: " + r.data.outcome + ".", false);
      const next = document.getElementById("next");
      window.location.assign(next ? next.getAttribute("href") : "/reviews");
      return;
    }
    if (action === "approve" && r.status === 422) {
      const box = document.getElementById("override");
      box.hidden = false;
      document.getElementById("override-note").focus();
    }
    problems(r.data, "Not done.");
  }

  async function approve() {
    const box = document.getElementById("override");
    const note = document.getElementById("override-note");
    const extra = { note: "" };
    if (box && !box.hidden && note.value.trim() !== "") extra.override = note.value;
    await finish("approve", extra);
  }

  let asking = null;
  function ask(action, label) {
    asking = action;
    const box = document.getElementById("reason-box");
    document.getElementById("reason-label").textContent = label;
    box.hidden = false;
    const input = document.getElementById("reason");
    input.value = "";
    input.focus();
  }

  if (editable) {
    fields().forEach(function (input) {
      input.addEventListener("focus", function () {
        lastField = input;
        highlight(input.closest(".field").dataset.name);
        // Typing replaces the value; the arrow keys keep it.
        input.select();
      });
      input.addEventListener("keydown", function (e) {
        if (e.key === "Enter" && !e.altKey) {
          e.preventDefault();
          accept(input);
        }
      });
    });
    document.querySelectorAll("#lines input").forEach(function (cell) {
      cell.addEventListener("focus", function () { lastField = cell; });
      cell.addEventListener("keydown", function (e) {
        if (e.key === "Enter" && !e.altKey) {
          e.preventDefault();
          save([{ field: "lines", value: lineRows() }]);
        }
      });
    });
    document.getElementById("approve").addEventListener("click", approve);
    document.getElementById("reject").addEventListener("click", function () { ask("reject", "Why is the document rejected?"); });
    document.getElementById("postpone").addEventListener("click", function () { ask("postpone", "Why put it off?"); });
    document.getElementById("reason").addEventListener("keydown", function (e) {
      if (e.key === "Enter") {
        e.preventDefault();
        finish(asking, { reason: e.target.value });
      }
    });
    const add = document.getElementById("add-field");
    if (add) {
      const addField = async function () {
        const name = document.getElementById("new-field-name").value.trim();
        const value = document.getElementById("new-field-value").value;
        if (!name) return;
        const ok = await save([{ field: name, value: value }]);
        if (ok) window.location.reload();
      };
      add.addEventListener("click", addField);
      document.getElementById("new-field-value").addEventListener("keydown", function (e) {
        if (e.key === "Enter") { e.preventDefault(); addField(); }
      });
    }
    const use = document.getElementById("use-template");
    if (use) {
      use.addEventListener("click", async function () {
        const ok = await save([], document.getElementById("template").value);
        if (ok) window.location.reload();
      });
    }
    document.addEventListener("keydown", function (e) {
      if (!e.altKey) return;
      const key = e.key.toLowerCase();
      if (key === "a") { e.preventDefault(); approve(); }
      else if (key === "r") { e.preventDefault(); ask("reject", "Why is the document rejected?"); }
      else if (key === "p") { e.preventDefault(); ask("postpone", "Why put it off?"); }
      else if (key === "n") { e.preventDefault(); document.getElementById("next").click(); }
    });
    const first = document.querySelector(".field.unsure input") || fields()[0];
    if (first) first.focus();
  }

  // Words on the page: a click fills the field last focused.
  fetch("/documents/" + job + "/words", { credentials: "same-origin" })
    .then(function (r) { return r.ok ? r.json() : []; })
    .then(function (pages) {
      const ns = "http://www.w3.org/2000/svg";
      pages.forEach(function (page) {
        const svg = document.querySelector('svg.page[data-page="' + page.page + '"] g.words');
        if (!svg) return;
        page.words.forEach(function (w) {
          const rect = document.createElementNS(ns, "rect");
          rect.setAttribute("class", "word");
          rect.setAttribute("x", w.x0);
          rect.setAttribute("y", w.y0);
          rect.setAttribute("width", Math.max(1, w.x1 - w.x0));
          rect.setAttribute("height", Math.max(1, w.y1 - w.y0));
          const title = document.createElementNS(ns, "title");
          title.textContent = w.text;
          rect.appendChild(title);
          rect.addEventListener("click", function (e) {
            if (!editable || !lastField) return;
            lastField.value = e.shiftKey && lastField.value ? lastField.value + " " + w.text : w.text;
            lastField.focus();
          });
          svg.appendChild(rect);
        });
      });
    })
    .catch(function () { /* the page works without the words */ });
})();
