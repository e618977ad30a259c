// The regulators' page: reads the inputs, hands them to the verifier (kvitto-web compiled to
// WebAssembly, embedded as base64 by scripts/web-build) and renders the JSON it answers.
// Everything shown comes from the bundle and is untrusted: it is only ever set as text
// (textContent, createElement), never parsed as HTML. No network: no fetch, no XHR, and the
// page's Content-Security-Policy forbids connections.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  let verifier = null;
  let bundle = null; // {name, text: Promise<string>}
  let runs = 0;

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === "class") e.className = v;
      else if (k.startsWith("data-")) e.setAttribute(k, String(v));
      else e[k] = v;
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function text(v) {
    if (v === null || v === undefined) return "";
    if (typeof v === "string") return v;
    return JSON.stringify(v);
  }

  function list(v) {
    return Array.isArray(v) ? v.join(", ") : text(v);
  }

  function load() {
    try {
      const b64 = window.KVITTO_WEB_WASM;
      const bin = atob(b64);
      const bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      wasm_bindgen.initSync({ module: bytes });
      verifier = wasm_bindgen;
      const about = JSON.parse(verifier.about());
      $("about").textContent =
        "kvitto-web " + about.kvitto_web + " — reads " + about.formats.join(" and ") +
        ". The verifier runs in this page; nothing is sent anywhere.";
    } catch (e) {
      $("about").textContent = "The verifier could not be loaded: " + e;
      $("verify").disabled = true;
    }
  }

  function takeBundle(file) {
    if (!file) return;
    bundle = { name: file.name, text: file.text() };
    $("bundle-name").textContent = file.name + " (" + file.size + " bytes)";
    $("bundle-name").classList.remove("muted");
  }

  function fillFrom(input, target, trim) {
    input.addEventListener("change", async () => {
      const f = input.files && input.files[0];
      if (!f) return;
      const t = await f.text();
      target.value = trim ? t.trim() : t;
    });
  }

  function wire() {
    $("bundle-file").addEventListener("change", (ev) => takeBundle(ev.target.files && ev.target.files[0]));
    const drop = $("drop");
    for (const t of ["dragenter", "dragover"]) {
      drop.addEventListener(t, (ev) => {
        ev.preventDefault();
        drop.classList.add("over");
      });
    }
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (ev) => {
      ev.preventDefault();
      drop.classList.remove("over");
      takeBundle(ev.dataTransfer && ev.dataTransfer.files && ev.dataTransfer.files[0]);
    });
    // Dropping a file elsewhere must not navigate away from the page.
    window.addEventListener("dragover", (ev) => ev.preventDefault());
    window.addEventListener("drop", (ev) => ev.preventDefault());
    fillFrom($("key-file"), $("key"), true);
    fillFrom($("since-file"), $("since"), false);
    $("form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      verify();
    });
  }

  async function verify() {
    runs += 1;
    const run = runs;
    $("verify").disabled = true;
    $("busy").textContent = "verifying…";
    let answer;
    try {
      const doc = bundle ? await bundle.text : "";
      if (!bundle) {
        answer = { ok: false, input_error: true, error: "no bundle: drop the bundle file or choose it", message: "no bundle: drop the bundle file or choose it" };
      } else {
        answer = JSON.parse(
          verifier.verifyBundle(
            doc,
            $("key").value,
            $("trust-embedded").checked,
            $("since").value,
            $("witness-keys").value,
            $("quorum").value
          )
        );
      }
    } catch (e) {
      answer = { ok: false, input_error: true, error: "internal error: " + e, message: "internal error: " + e };
    }
    render(answer, run);
    $("verify").disabled = false;
    $("busy").textContent = "";
  }

  function render(r, run) {
    const result = $("result");
    result.hidden = false;
    const verdict = $("verdict");
    verdict.className = "verdict " + (r.ok ? "pass" : r.input_error ? "input" : "fail");
    $("status").textContent = r.ok
      ? "PASS — the bundle verifies"
      : r.input_error
        ? "NOT CHECKED — the input is incomplete"
        : "FAIL — the bundle does not verify";
    $("message").textContent = r.message;
    $("reason-line").hidden = r.ok;
    $("reason").textContent = r.ok ? "" : r.error;
    $("proven").hidden = !r.ok;
    if (r.ok) renderProven(r);
    // For scripts driving the page: which run this is and how it ended.
    result.setAttribute("data-run", String(run));
    result.setAttribute("data-ok", String(!!r.ok));
    result.scrollIntoView({ block: "start" });
  }

  function renderProven(r) {
    const c = $("completeness");
    if (r.complete_up_to !== null && r.complete_up_to !== undefined) {
      c.textContent =
        "Complete up to " + r.complete_up_to +
        ": the bundle holds every event of this subject among the first " + r.complete_up_to + " events of the log.";
      c.className = "complete";
    } else {
      c.textContent = "NOT proven complete (a kvitto-bundle/1 cannot show that no event is left out).";
      c.className = "incomplete";
    }
    const notes = $("notes");
    clear(notes);
    for (const n of [...r.warnings, ...r.notes]) notes.append(el("li", {}, n));

    const facts = $("facts");
    clear(facts);
    const fact = (k, v) => facts.append(el("dt", {}, k), el("dd", {}, v));
    fact("log (origin)", r.origin);
    fact("checkpoint", "size " + r.checkpoint_size + ", root " + r.root);
    fact("subject (pseudonym)", r.subject_id);
    fact("controller", r.controllers.length ? r.controllers.join(", ") : "—");
    fact("events", String(r.timeline.length));
    fact("held checkpoint", r.extends_held_checkpoint === null ? "none given" : "size " + r.extends_held_checkpoint + ": extended by this bundle's checkpoint");
    fact(
      "witnesses",
      r.cosigned_by.length
        ? r.cosigned_by.map((w) => w.witness + " (at " + new Date(w.timestamp * 1000).toISOString() + ")").join(", ")
        : "none required"
    );

    renderTimeline(r.timeline);
    renderConsent(r.consent);
    renderRecipients(r.recipients);
    table($("collections"), r.collections, [
      ["seq", "seq", "num"], ["occurred at", "occurred_at", "time"], ["register", "register"],
      ["categories", "categories"], ["purpose", "purpose"], ["legal basis", "legal_basis"],
      ["source", "source"], ["details", detailsCell],
    ], "collections");
    table($("rectifications"), r.rectifications, [
      ["seq", "seq", "num"], ["occurred at", "occurred_at", "time"], ["register", "register"],
      ["categories", "categories"], ["details", detailsCell],
    ], "rectifications");
    table($("erasures"), r.erasures, [
      ["seq", "seq", "num"], ["occurred at", "occurred_at", "time"], ["scope", "scope"], ["reason", "reason"],
      ["details it destroyed", (e) => (e.erased_details.length ? "seqs " + e.erased_details.join(", ") : "none in this bundle")],
    ], "erasures");
    renderRequests(r.requests);
    const other = $("other");
    clear(other);
    other.append(el("h3", {}, "Restrictions (Art 18)"));
    table(other, r.restrictions, [
      ["from", "from", "time"], ["seq", "seq", "num"], ["reason", "reason"], ["lifted", (p) => p.to || "not lifted"],
      ["lifted by seq", "lifted_seq", "num"], ["why lifted", "lift_reason"],
    ], "restrictions", true);
    other.append(el("h3", {}, "Legal holds"));
    table(other, r.holds, [
      ["hold", "hold_id"], ["placed", "placed_at", "time"], ["seq", "seq", "num"], ["reason", "reason"],
      ["released", (h) => h.released_at || "in force"], ["released by seq", "released_seq", "num"],
    ], "holds", true);
    other.append(el("h3", {}, "Erasure deferrals"));
    table(other, r.deferrals, [
      ["seq", "seq", "num"], ["occurred at", "occurred_at", "time"], ["register", "register"],
      ["statute", "statute"], ["until", "until", "time"],
    ], "deferrals", true);
    other.append(el("h3", {}, "Closures"));
    table(other, r.closures, [
      ["seq", "seq", "num"], ["occurred at", "occurred_at", "time"], ["what", (e) => (e.record_id ? "record " + e.record_id + " of " + e.register + " closed" : "relationship ended")],
      ["reason", "reason"],
    ], "closures", true);
  }

  function detailsTag(e) {
    const label = { disclosed: "disclosed", erased: "erased by seq " + e.erased_by, withheld: "withheld", none: "" }[e.details];
    if (!label) return null;
    return el("span", { class: "tag " + e.details }, label);
  }

  function detailsCell(e) {
    return detailsTag(e) || el("span", { class: "muted" }, "none");
  }

  function renderTimeline(events) {
    const body = $("timeline").querySelector("tbody");
    clear(body);
    for (const e of events) {
      const details = el("td", {});
      const tag = detailsTag(e);
      if (tag) details.append(tag);
      if (e.disclosed && typeof e.disclosed === "object") {
        const dl = el("dl", { class: "details" });
        for (const [k, v] of Object.entries(e.disclosed)) dl.append(el("dt", {}, k), el("dd", {}, text(v)));
        details.append(dl);
      }
      body.append(
        el("tr", { "data-seq": e.seq, "data-kind": e.kind, "data-details": e.details, title: "hash " + e.hash + ", recorded " + e.recorded_at + " by " + e.actor },
          el("td", { class: "num" }, String(e.seq)),
          el("td", { class: "num" }, e.subject_seq === null ? "" : String(e.subject_seq)),
          el("td", { class: "time" }, e.occurred_at),
          el("td", { class: "kind" }, e.kind),
          el("td", { class: "what mono" }, e.summary),
          details
        )
      );
    }
  }

  function renderConsent(consent) {
    const box = $("consent");
    clear(box);
    if (!consent.length) {
      box.append(el("p", { class: "empty" }, "No consent, withdrawal or objection in this bundle."));
      return;
    }
    const t = el("table", { id: "consent-table" });
    t.append(el("thead", {}, el("tr", {}, el("th", {}, "purpose"), el("th", {}, "state now"), el("th", {}, "since"), el("th", {}, "seq"), el("th", {}, "over time"))));
    const body = el("tbody");
    for (const p of consent) {
      const periods = el("ul", { class: "periods" });
      for (const m of p.history) {
        const extra = [];
        if (m.notice_version) extra.push("notice " + m.notice_version);
        if (m.channel) extra.push("via " + m.channel);
        periods.append(
          el("li", {},
            el("span", { class: "state-" + m.state }, m.state),
            " " + m.from + " → " + (m.to || "now") + " (seq " + m.seq + (extra.length ? ", " + extra.join(", ") : "") + ")")
        );
      }
      body.append(
        el("tr", { "data-purpose": p.purpose, "data-state": p.state },
          el("td", { class: "mono" }, p.purpose),
          el("td", {}, el("span", { class: "state-" + p.state }, p.state)),
          el("td", { class: "time" }, p.since),
          el("td", { class: "num" }, String(p.seq)),
          el("td", {}, periods))
      );
    }
    t.append(body);
    box.append(t);
  }

  function renderRecipients(recipients) {
    const box = $("recipients");
    clear(box);
    if (!recipients.length) {
      box.append(el("p", { class: "empty" }, "Nothing was shared in this bundle."));
      return;
    }
    const t = el("table", { id: "recipients-table" });
    t.append(el("thead", {}, el("tr", {}, el("th", {}, "recipient"), el("th", {}, "categories"), el("th", {}, "purposes"), el("th", {}, "when (seq)"))));
    const body = el("tbody");
    for (const r of recipients) {
      const when = el("ul", { class: "periods" });
      for (const s of r.shares) when.append(el("li", {}, s.occurred_at + " (seq " + s.seq + "): " + list(s.categories) + " for " + s.purpose));
      body.append(
        el("tr", { "data-processor": r.processor },
          el("td", { class: "mono" }, r.processor),
          el("td", {}, list(r.categories)),
          el("td", {}, list(r.purposes)),
          el("td", {}, when))
      );
    }
    t.append(body);
    box.append(t);
  }

  function renderRequests(requests) {
    const box = $("requests");
    clear(box);
    if (!requests.length) {
      box.append(el("p", { class: "empty" }, "No rights request in this bundle."));
      return;
    }
    const t = el("table", { id: "requests-table" });
    t.append(el("thead", {}, el("tr", {}, el("th", {}, "request"), el("th", {}, "right"), el("th", {}, "status"), el("th", {}, "steps"))));
    const body = el("tbody");
    for (const q of requests) {
      const steps = el("ul", { class: "periods" });
      for (const s of q.steps) steps.append(el("li", {}, s.step + " " + s.at + " (seq " + s.seq + ")" + (s.reason ? ": " + s.reason : "")));
      body.append(
        el("tr", { "data-request": q.request_id, "data-status": q.status },
          el("td", { class: "mono" }, q.request_id),
          el("td", {}, text(q.right)),
          el("td", {}, q.status),
          el("td", {}, steps))
      );
    }
    t.append(body);
    box.append(t);
  }

  // A table of rows: columns are [heading, field name or function of the row, cell class].
  function table(box, rows, columns, id, append) {
    if (!append) clear(box);
    if (!rows.length) {
      box.append(el("p", { class: "empty", "data-table": id }, "None in this bundle."));
      return;
    }
    const t = el("table", { id: id + "-table" });
    t.append(el("thead", {}, el("tr", {}, ...columns.map(([h]) => el("th", {}, h)))));
    const body = el("tbody");
    for (const row of rows) {
      const tr = el("tr", { "data-seq": row.seq });
      for (const [, f, cls] of columns) {
        const v = typeof f === "function" ? f(row) : row[f];
        tr.append(el("td", { class: cls || null }, v instanceof Node ? v : Array.isArray(v) ? list(v) : text(v)));
      }
      body.append(tr);
    }
    t.append(body);
    box.append(t);
  }

  wire();
  load();
})();
