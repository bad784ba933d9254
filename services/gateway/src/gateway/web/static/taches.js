/* /taches: the parcel tasks dashboard, live (the seed reloaded the page every 30 s). */
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { h, live } = Jauge;
  const tasks = new Map(); // task id -> latest progress document
  const photos = new Map(); // task id -> a new photo's upload progress (uploads.js)
  const clients = [];
  const DAY_MS = 24 * 3600 * 1000;
  const FAILED_STEPS = new Set(["failed", "failed_retry", "failed_final"]);

  const isTask = (job) => job && (job.kind || "").startsWith("colis.");

  // which list a task belongs to: active, failed, completed, or none (cancelled, old)
  function section(job) {
    const step = job.step_status || "";
    if (job.status === "cancelled" || step === "cancelled") return null;
    if (job.status === "completed") {
      const at = Date.parse(job.finished_at || job.updated_at || 0);
      return Date.now() - at < DAY_MS ? "completed" : null;
    }
    if (job.status === "failed" || FAILED_STEPS.has(step)) return "failed";
    return "active";
  }
  // what colis-svc said with the task's last step (can_retry, can_force_retry for an admin);
  // its rule only for a document from before it said so
  const admin = document.body.dataset.admin === "true";
  const canRetry = (job) => (admin ? job.can_force_retry ?? job.can_retry : job.can_retry) ??
    (FAILED_STEPS.has(job.step_status) && (admin || (job.retry_count || 0) < (job.max_retries || 0)));
  // the summary's numbers are French ("7,5 kg", "1 250×40×30 cm"): back to "7.5", "1250"
  const frNumber = (text) => parseFloat(String(text || "").replace(/[\s\u202f]/g, "").replace(",", "."));
  const EDITABLE = ["client_id", "type_transport", "longueur", "largeur", "hauteur", "poids"];

  // the form's values as the task last ran, from the dashboard summary
  function current(job) {
    const s = job.summary || {};
    const dims = String(s.dimensions || "").replace(/cm/, "").split("×").map(frNumber);
    const values = { client_id: s.client_id, type_transport: s.transport, poids: frNumber(s.poids),
      longueur: dims[0], largeur: dims[1], hauteur: dims[2] };
    for (const [k, v] of Object.entries(values)) values[k] = v === undefined || Number.isNaN(v) ? "" : String(v);
    return values;
  }

  function retryForm(job) {
    const form = Jauge.$("#retry-template").content.firstElementChild.cloneNode(true);
    const data = current(job);
    form.client_id.append(...clients.map((c) => h("option", { value: c.id, text: c.name })));
    if (data.client_id && !clients.some((c) => String(c.id) === data.client_id)) {
      form.client_id.append(h("option", { value: data.client_id, text: data.client_id }));
    }
    for (const name of EDITABLE) form[name].value = data[name];
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      Jauge.clearErrors(form);
      // send only the fields the agent corrected
      const edits = {};
      for (const name of EDITABLE) {
        const value = form[name].value.trim();
        if (value !== "" && value !== data[name]) edits[name] = value;
      }
      const image = form.image.files[0];
      Jauge.busy(form.querySelector("button"), async () => {
        try {
          // a new photo (the last one came too late, say): shrunk, its upload opened,
          // its bytes sent after the retry is accepted, resumably
          const photo = image ? await JaugeUploads.prepare(image) : null;
          const body = { colis_data: edits, ...(photo ? { upload_id: photo.id } : {}) };
          await Jauge.api("POST", `/api/tasks/${encodeURIComponent(job.id)}/retry`, body);
          if (photo) {
            photos.set(job.id, { id: photo.id, task_id: job.id, size: photo.size, sent: 0, percent: 0, status: "sending" });
            JaugeUploads.attach(photo.id, { task_id: job.id, lot_id: job.lot_id, summary: job.summary || {} });
          }
          Jauge.flash(`Tâche ${job.id} relancée${photo ? " : la photo part en arrière-plan" : ""}.`, "success");
        } catch (err) {
          Jauge.showError(err, form);
        }
      });
    });
    return form;
  }

  function actions(job) {
    if (job.status === "completed") {
      const href = job.colis_id ? `/colis/${encodeURIComponent(job.colis_id)}`
        : job.lot_id ? `/lots/${encodeURIComponent(job.lot_id)}` : null;
      return h("p", { class: "task-actions" },
        `Terminée ${Jauge.ago(job.finished_at || job.updated_at)} `,
        href ? h("a", { class: "btn btn-light", href, text: "Voir le colis" }) : "");
    }
    const box = h("div", { class: "task-actions" });
    if (canRetry(job)) {
      box.append(h("details", { class: "retry" },
        h("summary", { class: "btn btn-warning", text: "Corriger et relancer" }), retryForm(job)));
    }
    if (job.can_cancel !== false) {
      box.append(h("button", { type: "button", class: "btn btn-danger-outline", "data-cancel": job.id,
        text: "Annuler la tâche" }));
    }
    return box;
  }

  JaugeUploads.on((photo) => {
    if (!photo.task_id || !tasks.has(photo.task_id)) return;
    photos.set(photo.task_id, photo);
    renderTask(tasks.get(photo.task_id));
  });

  function cardFor(job) {
    const card = Jauge.taskCard(job, actions(job));
    const photo = photos.get(job.id);
    if (photo && !Jauge.TERMINAL.has(job.status)) card.querySelector(".task-step").after(JaugeUploads.line(photo));
    return card;
  }

  // filters and pages (pager.js): each list shows one page of the tasks the filter form
  // lets through; a live update refreshes a card shown, and adds one to a first page if
  // the list has no other page, or if it goes before the page's first card (the failed
  // and completed lists are newest first; the active one, oldest first, grows at its end)
  const SORT_KEY = { failed: "updated_at", completed: "finished_at" };
  const filterForm = Jauge.$("#task-filters");
  const pagers = {};
  function matches(job) {
    const f = JaugePager.filtersOf(filterForm);
    if (f.get("status") && job.step_status !== f.get("status")) return false;
    if (f.get("lot") && job.lot_id !== f.get("lot")) return false;
    if (f.get("client") && (job.summary || {}).client_id !== f.get("client")) return false;
    return !f.get("day") || String(job.created_at || "").slice(0, 10) === f.get("day"); // UTC day
  }

  function renderTask(job) {
    const where = section(job) && matches(job) ? section(job) : null;
    const old = document.getElementById(`task-${job.id}`);
    const list = where && Jauge.$(`#list-${where}`);
    const pager = where && pagers[where];
    const joins = !pager || (pager.onFirstPage && (!pager.nextCursor ||
      (SORT_KEY[where] && Date.parse(job[SORT_KEY[where]] || 0) > pager.top)));
    if (!where || (old?.parentElement !== list && !joins)) {
      old?.remove(); counts(); return;
    }
    // keep an open retry form open while the task's bar moves
    if (old && old.parentElement === list && old.querySelector("details[open]") && where === "failed") {
      return;
    }
    const card = cardFor(job);
    if (old && old.parentElement === list) old.replaceWith(card);
    else { old?.remove(); list.prepend(card); }
    counts();
  }

  // one page of a list, from the API; returns the next page's cursor
  async function loadPage(state, cursor) {
    const params = JaugePager.filtersOf(filterForm);
    params.set("state", state);
    params.set("limit", String(JaugePager.pageSize()));
    const data = await JaugePager.fetchPage("/api/tasks", params, cursor);
    const list = Jauge.$(`#list-${state}`);
    const cards = [];
    for (const item of Array.isArray(data) ? data : data.items || []) {
      if (live.fresh(item)) tasks.set(item.id, item);
      const job = tasks.get(item.id);
      if (section(job) === state && matches(job)) {
        document.getElementById(`task-${job.id}`)?.remove();
        cards.push(cardFor(job));
      }
    }
    const first = (Array.isArray(data) ? data : data.items || [])[0];
    pagers[state].top = first && SORT_KEY[state] ? Date.parse(first[SORT_KEY[state]] || 0) : -Infinity;
    list.querySelectorAll(".task").forEach((el) => el.remove());
    list.append(...cards);
    counts();
    return Array.isArray(data) ? null : data.next_cursor;
  }

  function counts() {
    for (const name of ["active", "failed", "completed"]) {
      const list = Jauge.$(`#list-${name}`);
      const n = list.querySelectorAll(".task").length;
      Jauge.$(`[data-count="${name}"]`).textContent = String(n);
      list.querySelector(".empty").hidden = n > 0;
    }
  }

  async function loadStats() {
    try {
      const stats = await Jauge.api("GET", "/api/tasks/stats");
      for (const el of document.querySelectorAll("[data-stat]")) {
        const value = stats[el.dataset.stat];
        el.textContent = el.dataset.stat === "success_rate"
          ? `${Jauge.number(value, 1)} %` : Jauge.number(value, 0);
      }
    } catch (err) {
      Jauge.showError(err);
    }
  }
  // at most one stats read a second: a debounce would starve while updates keep coming,
  // and each read counts today's tasks in the store
  let statsTimer = null;
  const refreshStats = () => {
    if (statsTimer !== null) return;
    statsTimer = setTimeout(() => { statsTimer = null; loadStats(); }, 1000);
  };

  function apply(job) {
    if (!isTask(job) || !live.fresh(job)) return;
    const before = tasks.get(job.id);
    tasks.set(job.id, job);
    renderTask(job);
    if (!before || before.status !== job.status || before.step_status !== job.step_status) refreshStats();
  }

  live.on((frame) => {
    if (frame.type === "snapshot" || frame.type === "update") apply(frame.job);
  });

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-cancel]");
    if (!button) return;
    const id = button.dataset.cancel;
    if (!window.confirm(`Annuler la tâche ${id} ? Le colis ne sera pas créé.`)) return;
    await Jauge.busy(button, async () => {
      try {
        await Jauge.api("POST", `/api/tasks/${encodeURIComponent(id)}/cancel`);
        Jauge.flash(`Tâche ${id} : annulation demandée.`, "success");
      } catch (err) {
        Jauge.showError(err);
      }
    });
  });

  const LABELS = { active: "tâches en cours", failed: "tâches en échec", completed: "tâches complétées" };
  for (const state of ["active", "failed", "completed"]) {
    pagers[state] = new JaugePager.Pager(Jauge.$(`#list-${state}`), LABELS[state], (c) => loadPage(state, c));
  }

  // the form's choices: the statuses, the lots and the clients; then the address's filters
  async function fillFilters() {
    filterForm.status.append(...Object.entries(Jauge.STEPS).map(([value, text]) => h("option", { value, text })));
    filterForm.client.append(...clients.map((c) => h("option", { value: c.id, text: c.name })));
    try {
      const lots = await Jauge.api("GET", "/api/lots");
      for (const lot of Array.isArray(lots) ? lots : lots.items || []) {
        filterForm.lot.append(h("option", { value: lot.id, text: lot.numero_lot }));
      }
    } catch (err) { /* the lot filter then offers no choice */ }
    JaugePager.fillForm(filterForm);
  }

  function applyFilters() {
    JaugePager.remember(filterForm);
    return Promise.all(Object.values(pagers).map((pager) => pager.reset()));
  }
  filterForm.addEventListener("submit", (event) => {
    event.preventDefault();
    Jauge.busy(filterForm.querySelector("button[type=submit]"), applyFilters);
  });
  filterForm.addEventListener("reset", () => setTimeout(applyFilters)); // once the form is emptied

  (async () => {
    try {
      const list = await Jauge.api("GET", "/api/clients");
      clients.push(...(Array.isArray(list) ? list : list.items || []));
    } catch (err) { /* the retry form then offers no client choice */ }
    await fillFilters();
    await Promise.all(Object.values(pagers).map((pager) => pager.reset()));
    counts();
    live.subscribe("jobs");
    live.connect();
    // photos a reload left half-sent go on from here too (the server keeps the offset)
    for (const entry of await JaugeUploads.pending()) JaugeUploads.start(entry);
  })();
  loadStats();
});
