/* /imports/<id>: the import's gauge (live until it ends) and its per-file report. */
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { h, live } = Jauge;
  const slot = Jauge.$("#gauge");
  const jobId = slot.dataset.jobId;
  let job = null;

  const STATE = { pending: "En attente", announced: "Annoncé", done: "Traité", returned: "Non traité (remis)" };
  const base = `/api/imports/${encodeURIComponent(jobId)}`;

  function result(f) {
    if (f.ok === true) return h("span", { class: "badge badge-completed", text: "Importé" });
    if (f.ok === false) return h("span", { class: "badge badge-failed", text: "En erreur" });
    return h("span", { class: "badge badge-queued", text: STATE[f.state] || f.state || "En attente" });
  }

  function table(files) {
    const heads = ["N°", "Fichier", "Résultat", "Factures", "Lignes", "Erreur", "Durée", "Fichier rejeté"];
    return h("table", { class: "table" },
      h("thead", {}, h("tr", {}, heads.map((t) => h("th", { scope: "col", text: t })))),
      h("tbody", {}, files.map((f, i) => h("tr", { class: f.ok === false ? "row-error" : "" },
        h("td", { text: String((f.index ?? i) + 1) }),
        h("td", { text: f.item }),
        h("td", {}, result(f)),
        h("td", { text: f.invoices ? String(f.invoices) : "–" }),
        h("td", { text: String(f.lines || f.rows || 0) + (f.failed_rows ? ` (${f.failed_rows} en erreur)` : "") }),
        h("td", { class: "error-text", text: f.error || "" }),
        h("td", { text: !f.duration_ms ? "–" : f.duration_ms < 100 ? "< 0,1 s" : `${Jauge.number(f.duration_ms / 1000, 1)} s` }),
        h("td", { class: "rejected-links" }, f.rejected ? [
          h("a", { href: `${base}/files/${f.index}/rejected`, download: f.item, text: "Fichier" }), " · ",
          h("a", { href: `${base}/files/${f.index}/error.txt`, download: `${f.item}.error.txt`, text: "Motif (.txt)" }),
        ] : "–")))));
  }

  // the way back and forth between an import and the retry of its failed files
  function links(report) {
    const out = [];
    if (report.retry_of) {
      out.push(h("p", { class: "retry-of" }, "Relance des fichiers en erreur de l'",
        h("a", { href: `/imports/${encodeURIComponent(report.retry_of)}`, text: `import n° ${report.retry_of}` })));
    }
    if (report.retried_by) {
      out.push(h("p", { class: "retried-by" }, "Fichiers en erreur relancés dans l'",
        h("a", { href: `/imports/${encodeURIComponent(report.retried_by)}`, text: `import n° ${report.retried_by}` })));
    }
    return out;
  }

  // "Relancer les fichiers en erreur", with corrected files that replace the rejected ones
  function retryForm(report) {
    const failed = (report.files || []).filter((f) => f.ok === false);
    if (!failed.length || report.retried_by || !job || !Jauge.TERMINAL.has(job.status)) return null;
    const input = h("input", { type: "file", id: "retry-files", name: "files", multiple: "", class: "file-input" });
    const form = h("form", { id: "retry-form", class: "inline-form" },
      h("div", { class: "field" },
        h("label", { for: "retry-files", text: "Fichiers corrigés (facultatif, même nom que le fichier remplacé)" }),
        h("div", { class: "file-pick" }, input,
          h("span", { class: "btn btn-light", "aria-hidden": "true", text: "Choisir des fichiers…" }),
          h("span", { class: "file-names", text: "Aucun fichier choisi" }))),
      h("button", { type: "submit", class: "btn btn-primary", text: `Relancer les fichiers en erreur (${failed.length})` }));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const button = form.querySelector("button");
      Jauge.busy(button, async () => {
        Jauge.clearFlash();
        try {
          const body = new FormData();
          for (const file of input.files) body.append("files", file);
          const accepted = await Jauge.api("POST", `${base}/retry-failed`, input.files.length ? body : undefined);
          location.assign(`/imports/${encodeURIComponent(accepted.job_id)}`);
        } catch (err) {
          Jauge.showError(err);
        }
      });
    });
    return form;
  }

  async function loadReport() {
    const target = Jauge.$("#report");
    try {
      const report = await Jauge.api("GET", `/api/imports/${encodeURIComponent(jobId)}/report`);
      const files = Array.isArray(report) ? report : report.files || [];
      Jauge.$("#report-links").replaceChildren(...links(report));
      const retry = retryForm(report);
      Jauge.$("#report-actions").replaceChildren(
        h("a", { class: "btn btn-light", id: "report-csv", href: `${base}/report.csv`, download: "", text: "Télécharger le rapport (CSV)" }),
        ...(retry ? [retry] : []));
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
    slot.replaceChildren(Jauge.importDayGauge(job, Jauge.cancelImport));
    if (Jauge.TERMINAL.has(job.status) && !wasDone) loadReport();
    else if (!Jauge.TERMINAL.has(job.status)) reportSoon(); // the table grows while it runs
  });
  document.addEventListener("jauge:tick", () => {
    if (job && job.status === "running") {
      const el = Jauge.$("#gauge .duration");
      if (el) el.textContent = Jauge.duration(Jauge.elapsed(job));
    }
  });
  let reportTimer = null;
  function reportSoon() {
    if (reportTimer) return;
    reportTimer = setTimeout(() => { reportTimer = null; loadReport(); }, 1000);
  }
  loadReport();
  live.subscribe(`job:${jobId}`);
  live.connect();
});
