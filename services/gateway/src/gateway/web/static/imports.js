/* / : start imports, follow the running or queued one live, list the recent ones. */
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { h, live } = Jauge;
  const jobs = new Map(); // id -> latest import job
  let shown = null; // id of the job in the gauge

  const isImport = (job) => job && (job.kind || "").startsWith("import.");

  function renderGauge() {
    const slot = Jauge.$("#gauge");
    const job = shown && jobs.get(shown);
    if (!job) {
      slot.replaceChildren(h("p", { class: "muted", id: "gauge-empty", text: "Aucun import en cours." }));
      return;
    }
    slot.replaceChildren(Jauge.importDayGauge(job, Jauge.cancelImport));
  }

  // the gauge follows the job just started, else the running one, else the first queued one
  function pickShown() {
    const current = shown && jobs.get(shown);
    if (current && !Jauge.TERMINAL.has(current.status)) return;
    const active = [...jobs.values()].filter((j) => !Jauge.TERMINAL.has(j.status));
    const next = active.find((j) => j.status === "running") || active.sort((a, b) =>
      (a.queue_position || 0) - (b.queue_position || 0))[0];
    if (next) follow(next.id);
  }

  function follow(id) {
    if (shown && shown !== id) live.unsubscribe(`job:${shown}`);
    shown = id;
    live.subscribe(`job:${id}`);
    renderGauge();
  }

  // the list: one page of the imports the filter form lets through (pager.js); a live
  // update refreshes a row shown, and adds a new import to a first page
  const filterForm = Jauge.$("#import-filters");
  let pageIds = [];
  function matches(job) {
    const f = JaugePager.filtersOf(filterForm);
    if (f.get("kind") && job.kind !== f.get("kind")) return false;
    if (f.get("status") && job.status !== f.get("status")) return false;
    if (f.get("owner") && job.owner !== f.get("owner")) return false;
    return !f.get("day") || String(job.created_at || "").slice(0, 10) === f.get("day"); // UTC day
  }
  const newest = (a, b) => Date.parse(b.created_at || 0) - Date.parse(a.created_at || 0);

  function renderRecent() {
    const body = Jauge.$("#recent tbody");
    // newest first: what started after the page's first row goes above it
    const top = pageIds.length ? Date.parse(jobs.get(pageIds[0])?.created_at || 0) : -Infinity;
    const fresh = !pager || !pager.onFirstPage ? [] : [...jobs.values()].filter((job) =>
      !pageIds.includes(job.id) && matches(job) &&
      (!job.created_at || Date.parse(job.created_at) > top));
    const shown = [...fresh.sort(newest), ...pageIds.map((id) => jobs.get(id)).filter(Boolean)];
    const rows = shown
      .map((job) => {
        const kind = job.kind.replace(/^import\./, "");
        return h("tr", { "data-job-id": job.id },
          h("td", { text: Jauge.dateTime(job.started_at || job.created_at) }),
          h("td", { text: Jauge.IMPORT_KINDS[kind] || job.title || kind }),
          h("td", {}, Jauge.badge(job.status)),
          h("td", { text: `${job.processed} / ${job.total || "?"}` }),
          h("td", { text: job.failed ? String(job.failed) : "–" }),
          h("td", { text: Jauge.duration(Jauge.elapsed(job)) }),
          h("td", {}, Jauge.TERMINAL.has(job.status)
            ? h("a", { href: `/imports/${encodeURIComponent(job.id)}`, text: "Voir le rapport" })
            : h("a", { href: `/imports/${encodeURIComponent(job.id)}`, text: "Suivre" })));
      });
    body.replaceChildren(...(rows.length ? rows
      : [h("tr", { class: "empty" }, h("td", { colspan: "7", text: "Aucun import pour l'instant." }))]));
  }

  // one page of the list, from the API; returns the next page's cursor
  async function loadPage(cursor) {
    const params = JaugePager.filtersOf(filterForm);
    if (!params.get("kind")) params.set("kind", "import"); // every kind of import
    params.set("limit", String(JaugePager.pageSize()));
    const data = await JaugePager.fetchPage("/api/jobs", params, cursor);
    const items = Array.isArray(data) ? data : data.items || [];
    for (const job of items) apply(job);
    pageIds = items.map((job) => job.id);
    renderRecent();
    return Array.isArray(data) ? null : data.next_cursor;
  }
  const pager = new JaugePager.Pager(Jauge.$("#recent"), "imports", loadPage);

  function apply(job) {
    if (!isImport(job) || !live.fresh(job)) return;
    const before = jobs.get(job.id);
    // an import that starts or ends changes what waits in the inboxes
    if (!before || before.status !== job.status) inboxSoon();
    jobs.set(job.id, job);
    pickShown();
    if (job.id === shown) renderGauge();
    renderRecent();
  }

  live.on((frame) => {
    if (frame.type === "snapshot" || frame.type === "update") apply(frame.job);
  });

  async function start(work) {
    Jauge.clearFlash();
    try {
      const accepted = await work();
      Jauge.flash(`Import demandé (n° ${accepted.job_id}) : suivez sa progression ci-dessous.`, "success");
      jobs.set(accepted.job_id, jobs.get(accepted.job_id) || {
        id: accepted.job_id, kind: "import.", status: accepted.status || "queued",
        processed: 0, total: 0, failed: 0, percent: 0, seq: -1, errors: [],
      });
      follow(accepted.job_id);
      Jauge.$("#gauge-section").scrollIntoView({ block: "nearest" });
    } catch (err) {
      Jauge.showError(err, work.form);
      inboxSoon();
    }
  }

  let inboxTimer = null;
  function inboxSoon() {
    clearTimeout(inboxTimer);
    inboxTimer = setTimeout(Jauge.showInbox, 300);
  }

  Jauge.$("#import-buttons").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-kind]");
    if (!button) return;
    Jauge.busy(button, () => start(() => Jauge.api("POST", "/api/imports", { kind: button.dataset.kind })));
  });

  // files go up in the background, each with its bar (uploads.js: chunks, resumed after
  // a cut); the import is asked for the files that arrived
  const upload = Jauge.$("#upload-form");
  const rows = new Map(); // upload id -> its row
  const fileRow = (name) => h("li", { class: "upload-file", "data-status": "sending" },
    h("span", { class: "upload-name", text: name }), Jauge.bar(0, `Envoi de ${name}`),
    h("span", { class: "muted small upload-state", text: "En attente d'envoi" }));
  function showProgress(row, p) {
    row.dataset.status = p.status;
    row.querySelector(".bar").replaceWith(Jauge.bar(p.percent, `Envoi de ${row.firstChild.textContent}`));
    row.querySelector(".upload-state").textContent = p.status === "done" ? "Arrivé"
      : p.status === "error" ? `Non envoyé : ${p.message}`
        : p.status === "retrying" ? `Interrompu · ${p.percent} % : reprise automatique`
          : `Envoi · ${p.percent} %`;
  }
  JaugeUploads.on((p) => {
    const row = rows.get(p.id);
    if (row) showProgress(row, p);
  });

  async function sendAll(kind, files) {
    const list = Jauge.$("#upload-progress");
    const pending = files.map((file) => ({ file, row: fileRow(file.name) }));
    list.replaceChildren(...pending.map((p) => p.row));
    const arrived = [];
    const worker = async () => {
      for (let item = pending.shift(); item; item = pending.shift()) {
        try {
          const result = await JaugeUploads.sendFile(item.file, (id) => rows.set(id, item.row));
          showProgress(item.row, result);
          if (result.status === "done") arrived.push(result.id);
        } catch (err) {
          showProgress(item.row, { status: "error", percent: 0, message: err.message });
        }
      }
    };
    // two at a time: a slow link is shared, so more would only slow each file down
    await Promise.all([worker(), worker()]);
    if (!arrived.length) {
      Jauge.flash("Aucun fichier n'est arrivé : renvoyez-les.");
      return;
    }
    await start(async () => {
      const accepted = await Jauge.api("POST", "/api/imports/uploaded", { kind, upload_ids: arrived });
      if (accepted.missing && accepted.missing.length) {
        Jauge.flash(`${accepted.missing.length} fichier(s) non arrivé(s) : l'import démarre sans eux.`, "warning");
      }
      return accepted;
    });
  }

  upload.addEventListener("submit", (event) => {
    event.preventDefault();
    Jauge.clearErrors(upload);
    if (!upload.files.files.length) {
      Jauge.flash("Choisissez au moins un fichier à envoyer.");
      return;
    }
    const kind = upload.kind.value;
    const files = [...upload.files.files];
    upload.reset();
    Jauge.flash(`${files.length} fichier(s) en cours d'envoi : l'import démarrera dès leur arrivée.`, "success");
    sendAll(kind, files);
  });

  document.addEventListener("jauge:tick", () => {
    const job = shown && jobs.get(shown);
    if (job && job.status === "running") {
      const el = Jauge.$("#gauge .duration");
      if (el) el.textContent = Jauge.duration(Jauge.elapsed(job));
    }
  });

  function applyFilters() {
    JaugePager.remember(filterForm);
    return pager.reset();
  }
  filterForm.addEventListener("submit", (event) => {
    event.preventDefault();
    Jauge.busy(filterForm.querySelector("button[type=submit]"), applyFilters);
  });
  filterForm.addEventListener("reset", () => setTimeout(applyFilters)); // once the form is emptied
  filterForm.status.append(...Object.entries(Jauge.STATUS).map(([value, text]) => h("option", { value, text })));
  JaugePager.fillForm(filterForm);
  pager.reset();
  Jauge.showInbox();
  setInterval(Jauge.showInbox, 15000); // files dropped in the inboxes meanwhile
  live.subscribe("jobs");
  live.connect();
});
