/* The import gauge of an agent's day (/ and /imports/<id>): the files as they are done,
   the time left, the cancel button; and the inbox counts on the import buttons. */
"use strict";

(() => {
  const { h } = Jauge;
  const RECENT = 6; // names shown scrolling under the gauge

  function seconds(s) {
    if (s === null || s === undefined) return null;
    if (s < 1) return "moins d'une seconde";
    return Jauge.duration(s);
  }

  // "Fichier X importé" / "Erreur fichier X", newest first, as the seed's messages said
  function recentList(job) {
    const items = (job.recent || []).slice(0, RECENT);
    if (!items.length) return null;
    return h("ul", { class: "recent-files", "aria-live": "polite", "aria-label": "Derniers fichiers traités" },
      items.map((r) => h("li", { class: r.ok ? "recent-ok" : "recent-error",
        text: r.ok ? `Fichier ${r.item} importé` : `Erreur fichier ${r.item}` })));
  }

  // the gauge with what an agent watches during an import, and the hand to stop it
  Jauge.importDayGauge = function (job, onCancel) {
    const gauge = Jauge.importGauge(job);
    const terminal = Jauge.TERMINAL.has(job.status);
    if (!terminal) {
      const phase = job.status === "queued" ? "En attente"
        : job.current_step === "Nettoyage" ? "Nettoyage" : "Traitement des fichiers";
      gauge.append(h("p", { class: "phase", "data-phase": phase, text: `Phase : ${phase}` }));
      const eta = job.status === "running" ? seconds(job.eta_s) : null;
      if (eta) gauge.append(h("p", { class: "eta", text: `Temps restant estimé : ${eta}` }));
    }
    const recent = recentList(job);
    if (recent) gauge.append(recent);
    // in its clean-up every file is done: nothing is left to stop (import-svc completes it)
    if (!terminal && onCancel && job.current_step !== "Nettoyage") {
      const button = h("button", { type: "button", class: "btn btn-danger cancel-import", text: "Annuler l'import" });
      button.addEventListener("click", () => Jauge.busy(button, () => onCancel(job)));
      gauge.append(h("div", { class: "buttons" }, button));
    }
    return gauge;
  };

  Jauge.cancelImport = async function (job) {
    Jauge.clearFlash();
    try {
      await Jauge.api("POST", `/api/imports/${encodeURIComponent(job.id)}/cancel`);
      Jauge.flash("Annulation demandée : les fichiers non traités retournent d'où ils viennent.", "success");
    } catch (err) {
      Jauge.showError(err);
    }
  };

  // the import buttons say how many files wait in each inbox (GET /api/inbox)
  Jauge.showInbox = async function () {
    let counts;
    try {
      counts = (await Jauge.api("GET", "/api/inbox")).counts || {};
    } catch (err) {
      return; // the buttons keep their plain labels; starting still answers in French
    }
    for (const button of document.querySelectorAll("#import-buttons button[data-kind]")) {
      const n = counts[button.dataset.kind] || 0;
      const label = button.dataset.label || (button.dataset.label = button.textContent.trim());
      button.textContent = `${label} (${n === 0 ? "aucun fichier" : n === 1 ? "1 fichier" : `${n} fichiers`})`;
      button.dataset.count = String(n);
      button.disabled = n === 0;
      button.title = n === 0 ? "Aucun fichier en attente dans cette boîte de réception" : "";
    }
  };
})();
