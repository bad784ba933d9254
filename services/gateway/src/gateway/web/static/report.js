/* /imports/<id>: the import's gauge (live until it ends) and its per-file report. */
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { h, live } = Jauge;
  const slot = Jauge.$("#gauge");
  const jobId = slot.dataset.jobId;
  let job = null;

  const STATE = { pending: "En attente", announced: "Annoncé", done: "Traité" };

  function result(f) {
    if (f.ok === true) return h("span", { class: "badge badge-completed", text: "Importé" });
    if (f.ok === false) return h("span", { class: "badge badge-failed", text: "En erreur" });
    return h("span", { class: "badge badge-queued", text: STATE[f.state] || f.state || "En attente" });
  }

  function table(files) {
    const heads = ["N°", "Fichier", "Résultat", "Factures", "Lignes", "Erreur", "Durée"];
    return h("table", { class: "table" },
      h("thead", {}, h("tr", {}, heads.map((t) => h("th", { scope: "col", text: t })))),
      h("tbody", {}, files.map((f, i) => h("tr", { class: f.ok === false ? "row-error" : "" },
        h("td", { text: String((f.index ?? i) + 1) }),
        h("td", { text: f.item }),
        h("td", {}, result(f)),
        h("td", { text: f.invoices ? String(f.invoices) : "–" }),
        h("td", { text: String(f.lines || f.rows || 0) + (f.failed_rows ? ` (${f.failed_rows} en erreur)` : "") }),
        h("td", { class: "error-text", text: f.error || "" }),
        h("td", { text: !f.duration_ms ? "–" : f.duration_ms < 100 ? "< 0,1 s" : `${Jauge.number(f.duration_ms / 1000, 1)} s` })))));
  }

  async function loadReport() {
    const target = Jauge.$("#report");
    try {
      const report = await Jauge.api("GET", `/api/imports/${encodeURIComponent(jobId)}/report`);
      const files = Array.isArray(report) ? report : report.files || [];
      target.replaceChildren(files.length ? table(files)
        : h("p", { class: "muted", text: "Aucun fichier dans ce rapport." }));
    } catch (err) {
      target.replaceChildren(h("p", { class: "flash error", text: err.message }));
    }
  }

  live.on((frame) => {
    if (frame.topic !== `job:${jobId}`) return;
    if (!frame.job) {
      slot.replaceChildren(h("p", { class: "flash error", text: "Import introuvable (ou il ne vous appartient pas)." }));
      return;
    }
    if (!live.fresh(frame.job)) return;
    const wasDone = job && Jauge.TERMINAL.has(job.status);
    job = frame.job;
    slot.replaceChildren(Jauge.importGauge(job));
    if (Jauge.TERMINAL.has(job.status) && !wasDone) loadReport();
  });
  document.addEventListener("jauge:tick", () => {
    if (job && job.status === "running") {
      const el = Jauge.$("#gauge .duration");
      if (el) el.textContent = Jauge.duration(Jauge.elapsed(job));
    }
  });
  loadReport();
  live.subscribe(`job:${jobId}`);
  live.connect();
});
