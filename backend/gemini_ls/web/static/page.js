// Live updates of the jobs table: polls /api/jobs and rebuilds the rows with textContent only, so
// label names, job ids and error texts (user content) are never parsed as HTML.
"use strict";
(function () {
  const meta = (name) => document.querySelector(`meta[name="${name}"]`).content;
  const csrf = meta("csrf-token");
  const every = parseInt(meta("refresh-ms"), 10) || 2000;
  const actions = meta("actions") === "on";
  if (!document.getElementById("jobs")) return;  // a project's report: nothing live to poll

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function lines(cell, items) {
    items.forEach((t, i) => { if (i) cell.appendChild(el("br")); cell.appendChild(document.createTextNode(t)); });
  }

  function row(j) {
    const tr = el("tr");
    tr.dataset.id = j.id;
    const id = el("td", null, "id");
    lines(id, [j.id]);
    id.appendChild(el("br"));
    id.appendChild(el("small", j.model_version));
    tr.appendChild(id);
    tr.appendChild(el("td", j.kind));
    tr.appendChild(el("td", j.project));
    tr.appendChild(el("td", j.state, "state"));
    const p = el("td", null, "progress");
    const bar = el("progress");
    bar.max = j.total || 1;
    bar.value = j.done + j.failed + j.skipped;
    bar.setAttribute("aria-label", "progress of " + j.id);
    p.appendChild(bar);
    p.appendChild(el("span", `${j.done} done / ${j.failed} failed / ${j.skipped} skipped / ${j.total} total`, "counts"));
    tr.appendChild(p);
    tr.appendChild(el("td", j.rate_per_min === null ? "-" : `${j.rate_per_min.toFixed(1)}/min, ETA ${Math.round(j.eta_seconds)} s`));
    tr.appendChild(el("td", j.models.length ? j.models.join(", ") : "-"));
    const cost = el("td");
    lines(cost, [j.cost_usd === null ? "-" : "$" + j.cost_usd.toFixed(4)]);
    if (j.tokens !== null) { cost.appendChild(el("br")); cost.appendChild(el("small", `${j.tokens} tokens`)); }
    tr.appendChild(cost);
    const f = el("td", null, "failures");
    lines(f, Object.entries(j.failed_by_reason).map(([r, n]) => `${r}: ${n}`));
    if (j.first_failure) { f.appendChild(el("br")); f.appendChild(el("small", j.first_failure, "first")); }
    tr.appendChild(f);
    const a = el("td", null, "actions");
    if (actions && j.can_cancel) a.appendChild(action(j.id, "cancel", "Cancel"));
    if (actions && j.can_retry) a.appendChild(action(j.id, "retry", "Retry failed tasks"));
    tr.appendChild(a);
    return tr;
  }

  function action(id, verb, label) {
    const b = el("button", label, verb);
    b.type = "button";
    b.addEventListener("click", () => post(id, verb, b));
    return b;
  }

  async function post(id, verb, button) {
    button.disabled = true;
    const r = await fetch(`/api/jobs/${encodeURIComponent(id)}/${verb}`, {
      method: "POST", headers: { "X-CSRF-Token": csrf }, credentials: "same-origin" });
    const body = await r.json().catch(() => ({}));
    const what = verb === "retry" && r.ok ? `retried ${id} as job ${body.job} (${body.tasks} tasks)` : `${verb} ${id}: done`;
    // its own live region: the poll rewrites #status every few seconds
    document.getElementById("action-status").textContent = r.ok ? what : `${verb} failed (${r.status}): ${body.error || ""}`;
    refresh();
  }

  async function refresh() {
    const status = document.getElementById("status");
    try {
      const r = await fetch("/api/jobs", { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      const jobs = await r.json();
      const body = document.querySelector("#jobs tbody");
      body.replaceChildren(...jobs.map(row));
      status.textContent = `${jobs.length} job(s), updated ${new Date().toLocaleTimeString()}`;
    } catch (e) {
      status.textContent = `update failed: ${e.message}; retrying`;
    }
  }

  // "Start prelabel": the estimate first (POST estimate, shown), then Start posts the same fields.
  // Any edit after the estimate disables Start until the new figures are shown. Text only (textContent).
  const form = document.getElementById("prelabel");
  if (form) {
    const result = document.getElementById("prelabel-result");
    const start = document.getElementById("prelabel-start");
    const post = (path) => fetch(path, { method: "POST", body: new FormData(form), credentials: "same-origin",
                                         headers: { "X-CSRF-Token": csrf, Accept: "application/json" } });
    form.addEventListener("input", () => { start.disabled = true; });
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      start.disabled = true;
      result.textContent = "counting tokens on a sample of the tasks...";
      const r = await post("/api/prelabel/estimate");
      const body = await r.json();
      result.textContent = r.ok ? body.text : `estimate failed: ${body.error}`;
      start.disabled = !r.ok || body.tasks === 0;
    });
    start.addEventListener("click", async () => {
      start.disabled = true;
      const r = await post("/api/prelabel/start");
      const body = await r.json();
      result.textContent = r.ok ? `started job ${body.job}: ${body.tasks} tasks` : `start failed: ${body.error}`;
      refresh();
    });
  }

  refresh();
  setInterval(refresh, every);
})();
