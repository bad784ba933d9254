/* /lots/<id>: the lot's parcels, the parcel form that answers at once and shows each
   new task's progress in place (WebSocket job:<task_id>, colis-edit.js), the client
   dialog next to the form's client list, and the lot's closing and shipping.

   The photo never holds the answer up: it is shrunk and its upload opened as soon as it
   is chosen (uploads.js), the form names that upload, and the bytes go up after the
   answer, their progress shown in the task's card; a reload resumes them. */
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { h, live } = Jauge;
  const form = Jauge.$("#colis-form");
  const lotId = form.dataset.lotId;
  let clients = new Map();
  let prepared = null; // the chosen photo: a promise of its opened upload
  const taskList = JaugeColis.tasks(Jauge.$("#tasks"), { onCompleted: () => { loadColis(); loadLot(); } });

  function colisRow(c) {
    const dims = [c.longueur, c.largeur, c.hauteur].map((v) => Jauge.number(v, 1)).join(" × ");
    const client = clients.get(String(c.client_id));
    return h("tr", { id: `colis-${c.id}`, "data-colis-id": c.id },
      h("td", {}, h("a", { href: `/colis/${encodeURIComponent(c.id)}` }, h("strong", { text: c.numero_suivi || "–" }))),
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
      h("td", {}, open ? h("button", { type: "button", class: "btn btn-light", "data-edit": c.id,
        "aria-label": `Modifier le colis ${c.numero_suivi || ""}`, text: "Modifier" }) : ""));
  }

  let open = true; // the lot takes parcels and edits (domain rule: only while "ouvert")
  const actions = Jauge.$("#lot-actions");

  function showLot(lot) {
    Jauge.$("#lot-title").textContent = `Lot ${lot.numero_lot}`;
    document.title = `Lot ${lot.numero_lot} – Jauge`;
    const total = `${Jauge.number(lot.total_prix || 0)} ${lot.devise || ""}`.trim();
    Jauge.$("#lot-info").textContent =
      `${Jauge.TRANSPORT[lot.type_lot] || lot.type_lot} · ${Jauge.LOT_STATUT[lot.statut] || lot.statut} · ` +
      `${lot.colis_count || 0} colis · total ${total} · créé le ${Jauge.dateTime(lot.created_at)}` +
      (lot.closed_at ? ` · fermé le ${Jauge.dateTime(lot.closed_at)}` : "") +
      (lot.shipped_at ? ` · expédié le ${Jauge.dateTime(lot.shipped_at)}` : "");
    open = lot.statut === "ouvert";
    form.querySelector("button[type=submit]").disabled = !open;
    actions.replaceChildren(
      lot.statut === "ouvert" ? h("button", { type: "button", class: "btn btn-warning", "data-lot-action": "close", text: "Fermer le lot" }) : "",
      lot.statut === "ferme" ? h("button", { type: "button", class: "btn btn-primary", "data-lot-action": "ship", text: "Expédier le lot" }) : "");
  }

  async function loadLot() {
    try {
      const lot = await Jauge.api("GET", `/api/lots/${encodeURIComponent(lotId)}`);
      if (lot.type_lot && !form.dataset.typed) form.type_transport.value = lot.type_lot;
      showLot(lot);
      if (!open) {
        Jauge.flash(`Ce lot n'est plus ouvert (${Jauge.LOT_STATUT[lot.statut] || lot.statut}) : ` +
          "on ne peut plus y ajouter de colis ni modifier les siens.", "warning");
      }
    } catch (err) {
      Jauge.showError(err);
    }
  }

  const CONFIRM = {
    close: "Fermer ce lot ? On ne pourra plus y ajouter de colis ni modifier les siens.",
    ship: "Marquer ce lot comme expédié ?",
  };
  actions.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-lot-action]");
    if (!button) return;
    const action = button.dataset.lotAction;
    if (!window.confirm(CONFIRM[action])) return;
    Jauge.clearFlash();
    Jauge.busy(button, async () => {
      try {
        const lot = await Jauge.api("POST", `/api/lots/${encodeURIComponent(lotId)}/${action}`);
        Jauge.flash(`Lot ${lot.numero_lot} ${action === "close" ? "fermé" : "expédié"}.`, "success");
        showLot(lot);
        loadColis();
      } catch (err) {
        Jauge.showError(err);
      }
    });
  });
  form.type_transport.addEventListener("change", () => { form.dataset.typed = "1"; });

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
      clients = await JaugeColis.loadClients(form.client_id);
    } catch (err) {
      Jauge.showError(err);
    }
  }
  JaugeColis.clientPicker(form.client_id, { onSaved: (client) => { clients.set(String(client.id), client); } });

  // photos a reload (or a closed tab) left half-sent: their tasks shown, the bytes resumed
  async function resumePhotos() {
    for (const entry of await JaugeUploads.pending()) {
      if (entry.lot_id !== lotId) continue;
      if (!taskList.has(entry.task_id)) {
        taskList.follow({ ...JaugeColis.queued(entry.task_id, "colis.create", entry.summary || {}),
          status: "queued", created_at: entry.created_at, current_step: "Reprise de l'envoi de la photo" });
      }
      JaugeUploads.start(entry);
    }
  }

  form.image.addEventListener("change", () => {
    const file = form.image.files[0];
    prepared = file ? JaugeUploads.prepare(file) : null;
    if (prepared) prepared.catch(() => null); // reported at submit time
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
        const job = JaugeColis.queued(accepted.task_id, "colis.create", summary);
        if (photo) taskList.photo(job.id, photo);
        taskList.follow(job);
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

  // the quick edit (PATCH /api/colis/<id>): the same answer at once, the same photo path;
  // the parcel's own page has the full form
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
    Jauge.busy(edit.querySelector("button[type=submit]"), async () => {
      try {
        const job = await JaugeColis.submitEdit(parcel, edit, taskList, editPhoto);
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
