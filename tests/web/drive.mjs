// Drives the regulators' page in headless Chromium for tests/tests/web.rs: opens
// target/web/index.html from file://, runs each case of the spec (a bundle, by the file input
// or dropped on the page, a key, optionally a held checkpoint, witness keys and a quorum),
// reads back what the page shows, records every request the page makes, saves a screenshot,
// and prints all of it as one JSON document. The Rust test asserts; this script only observes.
//
// Usage: node tests/web/drive.mjs SPEC.json
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { chromium } from "playwright-core";

const spec = JSON.parse(readFileSync(process.argv[2], "utf8"));
const browser = await chromium.launch({
  executablePath: spec.chromium || "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const out = { requests: [], websockets: [], page_errors: [], console_errors: [], about: null, cases: [] };
try {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  context.on("request", (r) => out.requests.push(r.url()));
  const page = await context.newPage();
  page.on("websocket", (w) => out.websockets.push(w.url()));
  page.on("pageerror", (e) => out.page_errors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error") out.console_errors.push(m.text());
  });
  page.setDefaultTimeout(30000);
  await page.goto(spec.page);
  await page.waitForFunction(() => document.getElementById("about").textContent.length > 0);
  out.about = await page.textContent("#about");

  for (const [i, c] of spec.cases.entries()) {
    if (c.drop) {
      const text = readFileSync(c.bundle, "utf8");
      await page.evaluate(
        ([text, name]) => {
          const dt = new DataTransfer();
          dt.items.add(new File([text], name, { type: "application/json" }));
          document.getElementById("drop").dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
        },
        [text, basename(c.bundle)]
      );
    } else {
      await page.setInputFiles("#bundle-file", c.bundle);
    }
    await page.waitForFunction((name) => document.getElementById("bundle-name").textContent.startsWith(name), basename(c.bundle));
    await page.fill("#key", "");
    await page.setInputFiles("#key-file", []);
    await page.setInputFiles("#since-file", []);
    if (c.key_file) {
      await page.setInputFiles("#key-file", c.key_file);
      await page.waitForFunction(() => document.getElementById("key").value.length > 0);
    } else {
      await page.fill("#key", c.key || "");
    }
    await page.setChecked("#trust-embedded", !!c.trust_embedded);
    // The held checkpoint and witness fields are behind a disclosure, as a person finds them.
    if (!(await page.$eval("#more", (d) => d.open))) await page.click("#more > summary");
    await page.fill("#since", "");
    if (c.since) {
      await page.setInputFiles("#since-file", c.since);
      await page.waitForFunction(() => document.getElementById("since").value.length > 0);
    }
    await page.fill("#witness-keys", (c.witness_keys || []).join("\n"));
    await page.fill("#quorum", c.quorum === undefined || c.quorum === null ? "" : String(c.quorum));
    await page.click("#verify");
    await page.waitForSelector(`#result[data-run="${i + 1}"]`, { state: "attached" });
    const seen = await page.evaluate(() => {
      const t = (id) => document.getElementById(id).textContent;
      const rows = (sel, f) => Array.from(document.querySelectorAll(sel)).map(f);
      return {
        ok: document.getElementById("result").getAttribute("data-ok") === "true",
        verdict_class: document.getElementById("verdict").className,
        status: t("status"),
        message: t("message"),
        reason: t("reason"),
        reason_shown: !document.getElementById("reason-line").hidden,
        proven_shown: !document.getElementById("proven").hidden,
        completeness: t("completeness"),
        notes: rows("#notes li", (li) => li.textContent),
        facts: rows("#facts dt", (dt) => [dt.textContent, dt.nextElementSibling.textContent]),
        timeline: rows("#timeline tbody tr", (tr) => ({
          seq: Number(tr.dataset.seq),
          kind: tr.dataset.kind,
          details: tr.dataset.details,
          cells: Array.from(tr.cells).map((td) => td.textContent),
        })),
        consent: rows("#consent-table tbody tr", (tr) => ({ purpose: tr.dataset.purpose, state: tr.dataset.state, text: tr.textContent })),
        recipients: rows("#recipients-table tbody tr", (tr) => ({ processor: tr.dataset.processor, text: tr.textContent })),
        erasures: rows("#erasures-table tbody tr", (tr) => ({ seq: Number(tr.dataset.seq), cells: Array.from(tr.cells).map((td) => td.textContent) })),
        requests: rows("#requests-table tbody tr", (tr) => ({ request: tr.dataset.request, status: tr.dataset.status })),
      };
    });
    seen.name = c.name;
    out.cases.push(seen);
    const shot = (spec.screenshots || {})[c.name];
    if (shot) {
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.screenshot({ path: shot, fullPage: true });
    }
  }
  await context.close();
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(out) + "\n");
