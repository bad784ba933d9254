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
    slot.replaceChildren(Jauge.importGauge(job));
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

  function renderRecent() {
    const body = Jauge.$("#recent tbody");
    const rows = [...jobs.values()]
      .sort((a, b) => Date.parse(b.created_at || 0) - Date.parse(a.created_at || 0))
      .slice(0, 20)
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

  function apply(job) {
    if (!isImport(job) || !live.fresh(job)) return;
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
    }
  }

  Jauge.$("#import-buttons").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-kind]");
    if (!button) return;
    Jauge.busy(button, () => start(() => Jauge.api("POST", "/api/imports", { kind: button.dataset.kind })));
  });

  const upload = Jauge.$("#upload-form");
  upload.addEventListener("submit", (event) => {
    event.preventDefault();
    Jauge.clearErrors(upload);
    if (!upload.files.files.length) {
      Jauge.flash("Choisissez au moins un fichier à envoyer.");
      return;
    }
    const work = () => Jauge.api("POST", "/api/imports/upload", new FormData(upload));
    work.form = upload;
    Jauge.busy(upload.querySelector("button"), () => start(work).then(() => upload.reset()));
  });

  document.addEventListener("jauge:tick", () => {
    const job = shown && jobs.get(shown);
    if (job && job.status === "running") {
      const el = Jauge.$("#gauge .duration");
      if (el) el.textContent = Jauge.duration(Jauge.elapsed(job));
    }
  });

  (async () => {
    try {
      // one small request per kind: an admin's many parcel tasks never crowd imports out
      const lists = await Promise.all(Object.keys(Jauge.IMPORT_KINDS).map((kind) =>
        Jauge.api("GET", `/api/jobs?kind=import.${kind}&limit=20`)));
      for (const job of lists.flat()) apply(job);
      renderRecent();
    } catch (err) {
      Jauge.showError(err);
    }
  })();
  live.subscribe("jobs");
  live.connect();
});
