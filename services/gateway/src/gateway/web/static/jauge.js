/* Jauge: shared helpers of every page (API calls, French errors, WebSocket, gauges). */
"use strict";

(function () {
  const Jauge = {};
  window.Jauge = Jauge;

  /* ---------- small DOM helpers ---------- */

  // h("div", {class: "x", text: "..."}, child, ...) -> element
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") el.textContent = value;
      else if (key === "class") el.className = value;
      else if (key === "style") el.style.cssText = value; // CSSOM: allowed by the page's CSP, a style attribute is not
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }
  Jauge.h = h;
  Jauge.$ = (selector, root) => (root || document).querySelector(selector);

  /* ---------- French labels and formats ---------- */

  Jauge.IMPORT_KINDS = {
    edi: "Factures fournisseurs EDI",
    bbgr_statment: "Relevés BBGR",
    bbgr_monthly: "Mensuel BBGR",
    bbgr_retours: "Retours BBGR",
    bbgr_receptions: "Réceptions BBGR",
  };
  Jauge.STATUS = {
    queued: "En file d'attente",
    running: "En cours",
    completed: "Terminé",
    failed: "Échec",
    cancelled: "Annulé",
  };
  // the seed's ten task states, plus validation and creation (DESIGN.md)
  Jauge.STEPS = {
    pending: "En attente",
    processing: "En traitement",
    validation: "Validation des données",
    image_uploading: "Upload image…",
    creation: "Création du colis",
    price_calculating: "Calcul prix…",
    notification_sending: "Envoi notification…",
    completed: "Finalisé",
    failed: "Échec",
    failed_retry: "Échec – nouvel essai programmé",
    failed_final: "Échec définitif",
    cancelled: "Annulé",
  };
  Jauge.TRANSPORT = { cargo: "Cargo", express: "Express", bateau: "Bateau" };
  Jauge.LOT_STATUT = { ouvert: "Ouvert", ferme: "Fermé", expedie: "Expédié" };
  Jauge.COLIS_STATUT = { receptionne: "Réceptionné", en_transit: "En transit", arrive: "Arrivé", livre: "Livré" };
  Jauge.PAIEMENT = { comptant: "Comptant", non_paye: "Non payé", a_la_livraison: "À la livraison" };
  Jauge.FIELDS = {
    client_id: "Client", type_transport: "Transport", longueur: "Longueur",
    largeur: "Largeur", hauteur: "Hauteur", poids: "Poids", mode_paiement: "Paiement",
    statut: "Statut", description: "Description", image: "Photo", kind: "Type d'import",
    files: "Fichiers", type_lot: "Type de lot", username: "Identifiant", password: "Mot de passe",
    name: "Nom", phone: "Téléphone",
  };
  Jauge.TERMINAL = new Set(["completed", "failed", "cancelled"]);

  Jauge.duration = function (seconds) {
    if (seconds === null || seconds === undefined || isNaN(seconds)) return "–";
    let s = Math.round(Number(seconds));
    const hours = Math.floor(s / 3600); s -= hours * 3600;
    const minutes = Math.floor(s / 60); s -= minutes * 60;
    if (hours) return `${hours} h ${String(minutes).padStart(2, "0")} min`;
    if (minutes) return `${minutes} min ${String(s).padStart(2, "0")} s`;
    return `${s} s`;
  };
  // seconds the job has run: finished jobs carry duration_s, running ones count from started_at
  Jauge.elapsed = function (job) {
    if (job.duration_s !== null && job.duration_s !== undefined && Jauge.TERMINAL.has(job.status)) {
      return job.duration_s;
    }
    if (!job.started_at) return job.duration_s;
    return Math.max(0, (Date.now() - Date.parse(job.started_at)) / 1000);
  };
  Jauge.dateTime = function (iso) {
    if (!iso) return "–";
    const d = new Date(iso);
    return d.toLocaleString("fr-FR", { dateStyle: "short", timeStyle: "short" });
  };
  Jauge.ago = function (iso) {
    if (!iso) return "";
    const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (s < 60) return `il y a ${s} s`;
    if (s < 3600) return `il y a ${Math.floor(s / 60)} min`;
    if (s < 86400) return `il y a ${Math.floor(s / 3600)} h`;
    return `il y a ${Math.floor(s / 86400)} j`;
  };
  Jauge.number = (n, digits) =>
    n === null || n === undefined || n === "" ? "–"
      : Number(n).toLocaleString("fr-FR", { maximumFractionDigits: digits === undefined ? 2 : digits });

  /* ---------- API calls with French errors ---------- */

  class ApiError extends Error {
    constructor(status, message, fields) {
      super(message);
      this.status = status;
      this.fields = fields || []; // [{field, message}]
    }
  }
  Jauge.ApiError = ApiError;

  function fieldErrors(body) {
    const raw = Array.isArray(body && body.errors) ? body.errors
      : Array.isArray(body && body.detail) ? body.detail : [];
    return raw.map((e) => ({
      field: e.field || (Array.isArray(e.loc) ? e.loc.slice(1).join(".") : "") || "",
      message: e.message || e.msg || "valeur invalide",
    }));
  }

  function messageFor(status, body, headers) {
    const detail = body && typeof body.detail === "string" ? body.detail : "";
    switch (status) {
      case 400: return detail || "Requête incorrecte.";
      case 401: return detail || "Session expirée : reconnectez-vous.";
      case 403: return detail || "Accès refusé : vous n'avez pas les droits pour cette action.";
      case 404: return detail || "Élément introuvable (supprimé, ou il ne vous appartient pas).";
      case 409: return detail || "Conflit : l'élément a changé entre-temps. Rechargez la page.";
      case 413: return detail || "Fichier trop volumineux : réduisez sa taille et réessayez.";
      case 422: return detail || "Données invalides : vérifiez les champs indiqués.";
      case 429: {
        const wait = headers && headers.get("Retry-After");
        return detail || `Trop de demandes : réessayez ${wait ? `dans ${wait} s` : "dans un instant"}.`;
      }
      case 502: case 503: case 504:
        return detail || "Service momentanément indisponible : réessayez dans un instant.";
      default:
        if (status >= 500) return "Erreur interne du serveur : réessayez plus tard.";
        return detail || `Erreur inattendue (${status}).`;
    }
  }

  Jauge.goLogin = function () {
    const next = location.pathname + location.search;
    location.assign("/login" + (next && next !== "/" ? "?next=" + encodeURIComponent(next) : ""));
  };

  // api("GET", "/api/jobs") ; api("POST", "/api/lots", {type_lot}) ; api("POST", url, formData)
  Jauge.api = async function (method, path, body, options) {
    const init = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
    if (body instanceof FormData) init.body = body;
    else if (body instanceof URLSearchParams) init.body = body;
    else if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, "Connexion impossible : vérifiez votre réseau, puis réessayez.");
    }
    let data = null;
    const type = response.headers.get("Content-Type") || "";
    if (response.status !== 204 && type.includes("json")) {
      try { data = await response.json(); } catch (err) { data = null; }
    }
    if (response.ok) return data;
    if (response.status === 401 && !(options && options.noRedirect)) {
      Jauge.goLogin();
    }
    throw new ApiError(response.status, messageFor(response.status, data, response.headers), fieldErrors(data));
  };

  /* ---------- messages shown to the user ---------- */

  function flashBox(target) {
    return (typeof target === "string" ? Jauge.$(target) : target) || Jauge.$("#flash");
  }
  Jauge.flash = function (message, kind, target) {
    const box = flashBox(target);
    box.replaceChildren(message);
    box.className = "flash " + (kind || "error");
    box.hidden = false;
    if (kind === "success") box.setAttribute("role", "status");
    else box.setAttribute("role", "alert");
  };
  Jauge.clearFlash = function (target) {
    const box = flashBox(target);
    box.hidden = true;
    box.replaceChildren();
  };
  // shows err in the flash box and next to the form's fields (422)
  Jauge.showError = function (err, form, target) {
    if (form) {
      form.querySelectorAll(".field-error").forEach((e) => e.remove());
      form.querySelectorAll("[aria-invalid]").forEach((e) => e.removeAttribute("aria-invalid"));
    }
    const message = err instanceof ApiError ? err.message : "Erreur inattendue : " + err;
    const list = [];
    for (const f of (err && err.fields) || []) {
      const name = f.field.split(".").pop();
      const label = Jauge.FIELDS[name] || name || "Requête";
      list.push(h("li", { text: `${label} : ${f.message}` }));
      const input = form && form.querySelector(`[name="${CSS.escape(name)}"]`);
      if (input) {
        input.setAttribute("aria-invalid", "true");
        input.closest(".field, label")?.append(h("span", { class: "field-error", text: f.message }));
      }
    }
    const box = flashBox(target);
    box.replaceChildren(message, list.length ? h("ul", {}, list) : "");
    box.className = "flash error";
    box.setAttribute("role", "alert");
    box.hidden = false;
  };
  Jauge.clearErrors = function (form) {
    form.querySelectorAll(".field-error").forEach((e) => e.remove());
    form.querySelectorAll("[aria-invalid]").forEach((e) => e.removeAttribute("aria-invalid"));
  };
  // disables the submit button while the request runs
  Jauge.busy = async function (button, work) {
    const label = button.textContent;
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    try {
      return await work();
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
      button.textContent = label;
    }
  };

  /* ---------- live updates: one WebSocket, reconnecting with backoff ---------- */

  class Live {
    constructor() {
      this.topics = new Set();
      this.handlers = [];
      this.socket = null;
      this.attempt = 0;
      this.timer = null;
      this.pinger = null;
      this.latest = new Map(); // job id -> seq already shown
    }
    on(handler) { this.handlers.push(handler); }
    subscribe(topic) {
      this.topics.add(topic);
      this.send({ op: "subscribe", topic });
    }
    unsubscribe(topic) {
      this.topics.delete(topic);
      this.send({ op: "unsubscribe", topic });
    }
    send(frame) {
      if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(frame));
    }
    status(state, text) {
      const el = Jauge.$("#live-status");
      if (!el) return;
      el.hidden = false; // only pages with live data show it
      el.dataset.state = state;
      el.textContent = text;
    }
    connect() {
      // several scripts of one page may ask (the page's, the bell's): one socket
      if (this.socket && this.socket.readyState <= WebSocket.OPEN) return;
      clearTimeout(this.timer);
      if (this.attempt === 0) this.status("off", "Temps réel : connexion…");
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      const socket = new WebSocket(`${scheme}//${location.host}/ws`);
      this.socket = socket;
      socket.onopen = () => {
        this.attempt = 0;
        this.status("on", "Temps réel : connecté");
        // a fresh snapshot comes back for each topic: nothing missed while away
        for (const topic of this.topics) this.send({ op: "subscribe", topic });
        clearInterval(this.pinger);
        this.pinger = setInterval(() => this.send({ op: "ping" }), 25000);
      };
      socket.onmessage = (event) => {
        let frame;
        try { frame = JSON.parse(event.data); } catch (err) { return; }
        if (frame.type === "pong") return;
        if (frame.type === "error") { console.warn("ws:", frame.code, frame.message); return; }
        for (const handler of this.handlers) handler(frame);
      };
      socket.onclose = (event) => {
        clearInterval(this.pinger);
        if (this.socket !== socket) return;
        if (event.code === 4401) { Jauge.goLogin(); return; }
        // exponential backoff with jitter, 0.5 s up to 15 s
        const delay = Math.min(15000, 500 * 2 ** this.attempt) * (0.75 + Math.random() / 2);
        this.attempt += 1;
        this.status("off", `Temps réel : reconnexion dans ${Math.ceil(delay / 1000)} s…`);
        this.timer = setTimeout(() => this.connect(), delay);
      };
      socket.onerror = () => { /* onclose follows and schedules the retry */ };
    }
    // true if this version of the job is newer than the one already shown
    fresh(job) {
      if (!job) return false;
      const seen = this.latest.get(job.id);
      if (seen !== undefined && job.seq < seen) return false;
      this.latest.set(job.id, job.seq);
      return true;
    }
  }
  Jauge.live = new Live();
  Jauge.Live = Live;

  /* ---------- gauges ---------- */

  Jauge.bar = function (percent, label) {
    const value = Math.max(0, Math.min(100, Math.round(Number(percent) || 0)));
    return h("div", {
      class: "bar", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100",
      "aria-valuenow": String(value), "aria-valuetext": `${value} %`, "aria-label": label || "Progression",
    }, h("div", { class: "bar-fill", style: `width:${value}%` }));
  };

  Jauge.badge = function (status, label) {
    return h("span", { class: `badge badge-${status}`, text: label || Jauge.STATUS[status] || status });
  };

  // the import gauge: processed/total, percent, duration, queue position, errors, final message
  Jauge.importGauge = function (job) {
    const kind = (job.kind || "").replace(/^import\./, "");
    const title = job.title || Jauge.IMPORT_KINDS[kind] || "Import";
    const percent = job.total ? (100 * job.processed) / job.total : job.percent;
    const terminal = Jauge.TERMINAL.has(job.status);
    const lines = [];
    if (job.status === "queued") {
      lines.push(h("p", { class: "queued", text: job.queue_position
        ? `En file d'attente : position ${job.queue_position}. L'import démarrera dès que le précédent sera terminé.`
        : "En file d'attente : l'import démarrera dès que le précédent sera terminé." }));
    }
    const gauge = h("div", { class: `gauge gauge-${job.status}`, "data-job-id": job.id, "data-status": job.status },
      h("div", { class: "gauge-head" }, h("strong", { text: title }), Jauge.badge(job.status)),
      Jauge.bar(percent, `Progression de l'import ${title}`),
      h("dl", { class: "gauge-facts" },
        h("div", {}, h("dt", { text: "Fichiers traités" }),
          h("dd", { class: "processed", text: `${job.processed} / ${job.total || "?"}` })),
        h("div", {}, h("dt", { text: "Avancement" }), h("dd", { class: "percent", text: `${Math.round(percent || 0)} %` })),
        h("div", {}, h("dt", { text: "Durée" }), h("dd", { class: "duration", text: Jauge.duration(Jauge.elapsed(job)) })),
        job.failed ? h("div", {}, h("dt", { text: "En erreur" }), h("dd", { class: "failed", text: String(job.failed) })) : null,
      ),
      lines,
      job.current_step && !terminal ? h("p", { class: "muted step", text: job.current_step }) : null,
    );
    if (job.errors && job.errors.length) {
      gauge.append(h("table", { class: "table errors" },
        h("caption", { text: `Erreurs (${job.failed || job.errors.length})` }),
        h("thead", {}, h("tr", {}, h("th", { scope: "col", text: "Fichier" }), h("th", { scope: "col", text: "Erreur" }))),
        h("tbody", {}, job.errors.map((e) => h("tr", {}, h("td", { text: e.item }), h("td", { text: e.error || "" })))),
      ));
    }
    if (terminal) {
      gauge.append(h("p", { class: `final final-${job.status}`, role: "status",
        text: job.message || Jauge.STATUS[job.status] }));
    }
    return gauge;
  };

  // the parcel task card: step label, bar, error, retries
  Jauge.taskCard = function (job, extra) {
    const step = job.step_status || job.status;
    const summary = job.summary || {};
    const who = summary.client || summary.client_id;
    const title = job.numero_suivi ? `Colis ${job.numero_suivi}` : (job.title || `Tâche ${job.id}`);
    const card = h("article", { class: `task task-${job.status}`, id: `task-${job.id}`, "data-task-id": job.id, "data-step": step },
      h("div", { class: "task-head" },
        h("strong", { class: "task-title", text: title }),
        Jauge.badge(step.startsWith("failed") ? "failed" : job.status,
          Jauge.STEPS[step] || Jauge.STATUS[job.status] || step)),
      Jauge.bar(job.percent, `Progression de la tâche ${job.id}`),
      h("p", { class: "task-step" }, h("span", { class: "step-label", text: job.current_step || Jauge.STEPS[step] || "" }),
        h("span", { class: "muted", text: ` · ${Math.round(job.percent || 0)} %` })),
      h("p", { class: "muted small" },
        `Tâche ${job.id} · créée ${Jauge.ago(job.created_at)}`,
        who ? ` · Client : ${who}` : "",
        summary.transport ? ` · ${Jauge.TRANSPORT[summary.transport] || summary.transport}` : "",
        summary.poids ? ` · ${summary.poids}` : "",
        summary.dimensions ? ` · ${summary.dimensions}` : ""),
    );
    const failed = job.status === "failed" || step.startsWith("failed");
    const error = !failed ? "" : job.message && job.message !== job.current_step ? job.message
      : job.errors && job.errors.length ? job.errors[job.errors.length - 1].error : job.message;
    if (error) card.append(h("p", { class: "task-error", text: error }));
    if (failed && job.max_retries !== null && job.max_retries !== undefined) {
      card.append(h("p", { class: "muted small", text:
        `Tentative ${job.retry_count || 0}/${job.max_retries}` +
        (job.next_retry_at ? ` · prochain essai ${new Date(job.next_retry_at).toLocaleTimeString("fr-FR")}` : "") }));
    }
    if (extra) card.append(extra);
    return card;
  };

  /* ---------- on every page ---------- */

  document.addEventListener("DOMContentLoaded", () => {
    const logout = Jauge.$("#logout");
    if (logout) {
      logout.addEventListener("click", async () => {
        // the logout closes this session's socket (4401, which would go to /login?next=):
        // let it go first, unheeded
        const socket = Jauge.live.socket;
        Jauge.live.socket = null;
        clearTimeout(Jauge.live.timer);
        if (socket) socket.close();
        try { await Jauge.api("POST", "/api/auth/logout", undefined, { noRedirect: true }); } catch (err) { /* gone anyway */ }
        location.assign("/login");
      });
    }
    // file pickers show the chosen names in French (the native widget speaks the browser's language)
    const showFiles = (input) => {
      const names = input.parentElement.querySelector(".file-names");
      if (!names) return;
      names.dataset.empty ??= names.textContent;
      names.textContent = [...input.files].map((f) => f.name).join(", ") || names.dataset.empty;
    };
    document.addEventListener("change", (event) => {
      if (event.target.matches(".file-input")) showFiles(event.target);
    });
    document.addEventListener("reset", (event) => {
      setTimeout(() => event.target.querySelectorAll(".file-input").forEach(showFiles));
    });
    // re-render running durations once a second
    setInterval(() => document.dispatchEvent(new Event("jauge:tick")), 1000);
  });
})();
