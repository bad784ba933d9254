/* /lots/<id>: the lot's parcels, and the parcel form that answers at once and
   shows each new task's progress in place (WebSocket job:<task_id>).

   The photo never holds the answer up: it is shrunk and its upload opened as soon as it
   is chosen (uploads.js), the form names that upload, and the bytes go up after the
   answer, their progress shown in the task's card; a reload resumes them. */
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { h, live } = Jauge;
  const form = Jauge.$("#colis-form");
  const lotId = form.dataset.lotId;
  const tasks = new Map(); // task id -> latest progress document
  const clients = new Map();
  const photos = new Map(); // task id -> its photo upload's progress (uploads.js)
  let prepared = null; // the chosen photo: a promise of its opened upload

  function colisRow(c) {
    const dims = [c.longueur, c.largeur, c.hauteur].map((v) => Jauge.number(v, 1)).join(" × ");
    const client = clients.get(String(c.client_id));
    return h("tr", { id: `colis-${c.id}`, "data-colis-id": c.id },
      h("td", {}, h("strong", { text: c.numero_suivi || "–" })),
      h("td", { text: client ? client.name : c.client_name || c.client_id || "–" }),
      h("td", { text: Jauge.TRANSPORT[c.type_transport] || c.type_transport || "–" }),
      h("td", { text: dims }),
      h("td", { text: `${Jauge.number(c.poids)} kg` }),
      h("td", { text: c.prix !== undefined && c.prix !== null ? `${Jauge.number(c.prix)} ${c.devise || ""}` : "–" }),
      h("td", { text: Jauge.COLIS_STATUT[c.statut] || c.statut || "–" }),
      h("td", {}, c.thumbnail_url || c.image_url
        ? h("a", { href: c.image_url || c.thumbnail_url }, h("img", {
          src: c.thumbnail_url || c.image_url, alt: `Photo du colis ${c.numero_suivi || ""}`,
          width: "48", height: "48", loading: "lazy" }))
        : "–"),
      h("td", {}, h("button", { type: "button", class: "btn btn-light", "data-edit": c.id,
        "aria-label": `Modifier le colis ${c.numero_suivi || ""}`, text: "Modifier" })));
  }

  async function loadLot() {
    try {
      const lot = await Jauge.api("GET", `/api/lots/${encodeURIComponent(lotId)}`);
      Jauge.$("#lot-title").textContent = `Lot ${lot.numero_lot}`;
      document.title = `Lot ${lot.numero_lot} – Jauge`;
      Jauge.$("#lot-info").textContent =
        `${Jauge.TRANSPORT[lot.type_lot] || lot.type_lot} · ${Jauge.LOT_STATUT[lot.statut] || lot.statut} · créé le ${Jauge.dateTime(lot.created_at)}`;
      if (lot.type_lot) form.type_transport.value = lot.type_lot;
      if (lot.statut && lot.statut !== "ouvert") {
        Jauge.flash("Ce lot n'est plus ouvert : on ne peut plus y ajouter de colis.", "warning");
        form.querySelector("button[type=submit]").disabled = true;
      }
    } catch (err) {
      Jauge.showError(err);
    }
  }

  const shown = new Map(); // colis id -> the parcel as listed

  async function loadColis() {
    const body = Jauge.$("#colis tbody");
    try {
      const data = await Jauge.api("GET", `/api/lots/${encodeURIComponent(lotId)}/colis`);
      const list = Array.isArray(data) ? data : data.items || [];
      for (const c of list) shown.set(String(c.id), c);
      body.replaceChildren(...(list.length ? list.map(colisRow)
        : [h("tr", { class: "empty" }, h("td", { colspan: "9", text: "Aucun colis dans ce lot." }))]));
    } catch (err) {
      body.replaceChildren(h("tr", { class: "empty" }, h("td", { colspan: "9", class: "error-text", role: "alert", text: err.message })));
    }
  }

  async function loadClients() {
    try {
      const data = await Jauge.api("GET", "/api/clients");
      const list = Array.isArray(data) ? data : data.items || [];
      for (const c of list) clients.set(String(c.id), c);
      const select = form.client_id;
      select.append(...list.map((c) => h("option", { value: c.id, text: c.phone ? `${c.name} (${c.phone})` : c.name })));
    } catch (err) {
      Jauge.showError(err);
    }
  }

  function renderTask(job) {
    let extra = null;
    if (job.status === "completed") {
      extra = h("p", { class: "task-done", role: "status", text:
        `Colis ${job.numero_suivi || ""} enregistré.` });
    } else if (job.status === "failed" || job.status === "cancelled") {
      extra = h("p", {}, h("a", { href: "/taches", text: "Corriger ou annuler depuis le suivi des tâches" }));
    }
    const card = Jauge.taskCard(job, extra);
    const photo = photos.get(job.id);
    if (photo && !Jauge.TERMINAL.has(job.status)) card.querySelector(".task-step").after(JaugeUploads.line(photo));
    const old = document.getElementById(`task-${job.id}`);
    if (old) old.replaceWith(card); else Jauge.$("#tasks").prepend(card);
  }

  JaugeUploads.on((photo) => {
    if (!photo.task_id || !tasks.has(photo.task_id)) return;
    photos.set(photo.task_id, photo);
    renderTask(tasks.get(photo.task_id));
  });

  function followTask(job) {
    tasks.set(job.id, job);
    renderTask(job);
    live.subscribe(`job:${job.id}`);
  }

  // photos a reload (or a closed tab) left half-sent: their tasks shown, the bytes resumed
  async function resumePhotos() {
    for (const entry of await JaugeUploads.pending()) {
      if (entry.lot_id !== lotId) continue;
      if (!tasks.has(entry.task_id)) {
        followTask({ id: entry.task_id, kind: "colis.create", status: "queued", step_status: "pending",
          percent: 0, seq: -1, created_at: entry.created_at, current_step: "Reprise de l'envoi de la photo",
          summary: entry.summary || {} });
      }
      JaugeUploads.start(entry);
    }
  }

  form.image.addEventListener("change", () => {
    const file = form.image.files[0];
    prepared = file ? JaugeUploads.prepare(file) : null;
    if (prepared) prepared.catch(() => null); // reported at submit time
  });

  live.on((frame) => {
    const job = frame.job;
    if (!job || !tasks.has(job.id) || !live.fresh(job)) return;
    const before = tasks.get(job.id);
    tasks.set(job.id, job);
    renderTask(job);
    if (job.status === "completed" && before.status !== "completed") loadColis();
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    Jauge.clearFlash();
    Jauge.clearErrors(form);
    if (!form.client_id.value) {
      Jauge.showError(new Jauge.ApiError(422, "Données invalides : vérifiez les champs indiqués.",
        [{ field: "client_id", message: "choisissez un client" }]), form);
      return;
    }
    const data = new FormData(form);
    const image = data.get("image");
    data.delete("image");
    const hasPhoto = image && image.size;
    Jauge.busy(form.querySelector("button[type=submit]"), async () => {
      try {
        let photo = null;
        if (hasPhoto) {
          // opened when the photo was chosen; again if that failed (the link was down)
          try {
            photo = await (prepared || JaugeUploads.prepare(image));
          } catch (err) {
            prepared = JaugeUploads.prepare(image);
            photo = await prepared;
          }
          data.set("upload_id", photo.id);
        }
        const accepted = await Jauge.api("POST", `/api/lots/${encodeURIComponent(lotId)}/colis`, data);
        const summary = { client: form.client_id.selectedOptions[0].textContent, transport: data.get("type_transport"),
          poids: `${data.get("poids")} kg` };
        const job = { id: accepted.task_id, kind: "colis.create", status: "queued", step_status: "pending",
          percent: 0, seq: -1, created_at: new Date().toISOString(), current_step: "Ajouté à la file", summary };
        if (photo) {
          photos.set(job.id, { id: photo.id, task_id: job.id, size: photo.size, sent: 0, percent: 0, status: "sending" });
        }
        followTask(job);
        if (photo) JaugeUploads.attach(photo.id, { task_id: job.id, lot_id: lotId, summary });
        prepared = null;
        Jauge.flash(`Colis ajouté à la file de traitement (tâche ${job.id}).`, "success");
        // keep client and transport: agents often enter several parcels for one client
        for (const name of ["longueur", "largeur", "hauteur", "poids", "description", "image"]) form[name].value = "";
        form.image.dispatchEvent(new Event("change", { bubbles: true }));
        form.longueur.focus();
      } catch (err) {
        Jauge.showError(err, form);
      }
    });
  });

  // the edit form (PATCH /api/colis/<id>): the same answer at once, the same photo path
  const edit = Jauge.$("#colis-edit-form");
  const EDITED = ["longueur", "largeur", "hauteur", "poids", "description"];
  let editing = null;
  let editPhoto = null;
  Jauge.$("#colis tbody").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-edit]");
    const parcel = button && shown.get(button.dataset.edit);
    if (!parcel) return;
    editing = parcel;
    edit.reset();
    editPhoto = null;
    for (const name of EDITED) edit[name].value = parcel[name] ?? "";
    Jauge.$("#edit-numero").textContent = parcel.numero_suivi || "";
    Jauge.$("#edit-card").hidden = false;
    Jauge.$("#edit-card").scrollIntoView({ block: "nearest" });
    edit.longueur.focus();
  });
  Jauge.$("#edit-cancel").addEventListener("click", () => { Jauge.$("#edit-card").hidden = true; });
  edit.image.addEventListener("change", () => {
    const file = edit.image.files[0];
    editPhoto = file ? JaugeUploads.prepare(file) : null;
    if (editPhoto) editPhoto.catch(() => null);
  });
  edit.addEventListener("submit", (event) => {
    event.preventDefault();
    Jauge.clearErrors(edit);
    if (!editing) return;
    const parcel = editing;
    const data = new FormData();
    for (const name of EDITED) {
      const value = edit[name].value.trim();
      if (value !== String(parcel[name] ?? "")) data.set(name, value);
    }
    const image = edit.image.files[0];
    Jauge.busy(edit.querySelector("button[type=submit]"), async () => {
      try {
        let photo = null;
        if (image) {
          try { photo = await (editPhoto || JaugeUploads.prepare(image)); } catch (err) { photo = await JaugeUploads.prepare(image); }
          data.set("upload_id", photo.id);
        }
        const accepted = await Jauge.api("PATCH", `/api/colis/${encodeURIComponent(parcel.id)}`, data);
        const summary = { client: parcel.client_name || parcel.client_id, transport: parcel.type_transport };
        const job = { id: accepted.task_id, kind: "colis.update", status: "queued", step_status: "pending",
          percent: 0, seq: -1, created_at: new Date().toISOString(), current_step: "Ajouté à la file",
          title: `Modification du colis ${parcel.numero_suivi || ""}`, summary };
        if (photo) {
          photos.set(job.id, { id: photo.id, task_id: job.id, size: photo.size, sent: 0, percent: 0, status: "sending" });
        }
        followTask(job);
        if (photo) JaugeUploads.attach(photo.id, { task_id: job.id, lot_id: lotId, summary });
        Jauge.flash(`Modification du colis ${parcel.numero_suivi || ""} ajoutée à la file (tâche ${job.id}).`, "success");
        Jauge.$("#edit-card").hidden = true;
        editing = null;
      } catch (err) {
        Jauge.showError(err, edit);
      }
    });
  });

  loadClients().then(loadColis).then(resumePhotos);
  loadLot();
  live.connect();
});
