/* What the lot page and the parcel page share:
   - the task cards of parcel tasks started from the page, kept live from /ws (job:<id>),
     with the photo's upload progress (uploads.js);
   - the parcel edit: only the changed fields sent (PATCH /api/colis/<id>), answered at
     once (202 + task id), the task then followed in a card;
   - the client dialog next to a client list: create a client or correct the chosen one
     without leaving the form (POST /api/clients, PATCH /api/clients/<id>). */
"use strict";

window.JaugeColis = (() => {
  const { h, live } = Jauge;
  const EDITABLE = ["client_id", "type_transport", "longueur", "largeur", "hauteur", "poids",
    "mode_paiement", "statut", "description"];

  // the cards of the tasks this page started; `onCompleted(job)` when one completes
  function tasks(container, { onCompleted } = {}) {
    const jobs = new Map(); // task id -> latest progress document
    const photos = new Map(); // task id -> its photo upload's progress

    function render(job) {
      let extra = null;
      if (job.status === "completed") {
        const verb = job.kind === "colis.update" ? "modifié" : "enregistré";
        extra = h("p", { class: "task-done", role: "status", text: `Colis ${job.numero_suivi || ""} ${verb}.` });
      } else if (job.status === "failed" || job.status === "cancelled") {
        extra = h("p", {}, h("a", { href: "/taches", text: "Corriger ou annuler depuis le suivi des tâches" }));
      }
      const card = Jauge.taskCard(job, extra);
      const photo = photos.get(job.id);
      if (photo && !Jauge.TERMINAL.has(job.status)) card.querySelector(".task-step").after(JaugeUploads.line(photo));
      const old = document.getElementById(`task-${job.id}`);
      if (old) old.replaceWith(card); else container.prepend(card);
    }

    JaugeUploads.on((photo) => {
      if (!photo.task_id || !jobs.has(photo.task_id)) return;
      photos.set(photo.task_id, photo);
      render(jobs.get(photo.task_id));
    });
    live.on((frame) => {
      const job = frame.job;
      if (!job || !jobs.has(job.id) || !live.fresh(job)) return;
      const before = jobs.get(job.id);
      jobs.set(job.id, job);
      render(job);
      if (job.status === "completed" && before.status !== "completed" && onCompleted) onCompleted(job);
    });

    return {
      has: (id) => jobs.has(id),
      follow(job) {
        jobs.set(job.id, job);
        render(job);
        live.subscribe(`job:${job.id}`);
      },
      // a photo on its way for this task: its progress shown in the card
      photo(taskId, photo) {
        photos.set(taskId, { id: photo.id, task_id: taskId, size: photo.size, sent: 0, percent: 0, status: "sending" });
      },
    };
  }

  // a task as the page shows it before the first /ws frame
  function queued(id, kind, summary, title) {
    return { id, kind, status: "queued", step_status: "pending", percent: 0, seq: -1,
      created_at: new Date().toISOString(), current_step: "Ajouté à la file", title, summary };
  }

  // PATCH the fields of `form` that differ from `parcel` (and a new photo: the form's
  // `image`, `prepared` when it was chosen); the task is followed in `list`. Returns it.
  async function submitEdit(parcel, form, list, prepared) {
    const data = new FormData();
    for (const name of EDITABLE) {
      const input = form.elements[name];
      if (!input) continue;
      const value = input.value.trim();
      if (value !== String(parcel[name] ?? "")) data.set(name, value);
    }
    const image = form.elements.image && form.elements.image.files[0];
    let photo = null;
    if (image) {
      try { photo = await (prepared || JaugeUploads.prepare(image)); } catch (err) { photo = await JaugeUploads.prepare(image); }
      data.set("upload_id", photo.id);
    }
    const accepted = await Jauge.api("PATCH", `/api/colis/${encodeURIComponent(parcel.id)}`, data);
    const summary = { client: parcel.client_name || parcel.client_id, transport: parcel.type_transport };
    const job = queued(accepted.task_id, "colis.update", summary, `Modification du colis ${parcel.numero_suivi || ""}`);
    if (photo) list.photo(job.id, photo);
    list.follow(job);
    if (photo) JaugeUploads.attach(photo.id, { task_id: job.id, lot_id: parcel.lot_id, summary });
    return job;
  }

  function optionFor(client) {
    return h("option", { value: client.id, text: client.phone ? `${client.name} (${client.phone})` : client.name });
  }

  // "Nouveau client…" and "Modifier le client…" next to `select`; `onSaved(client)`
  function clientPicker(select, { onSaved } = {}) {
    const key = select.id;
    const dialog = h("dialog", { class: "dialog", id: `${key}-dialog`, "aria-labelledby": `${key}-dialog-title` },
      h("form", { method: "dialog", class: "grid-form", novalidate: "" },
        h("h2", { id: `${key}-dialog-title`, class: "field wide" }),
        h("div", { class: "field wide" }, h("div", { class: "flash", id: `${key}-dialog-flash`, role: "alert", hidden: "" })),
        h("div", { class: "field wide" }, h("label", { for: `${key}-dialog-name`, text: "Nom" }),
          h("input", { id: `${key}-dialog-name`, name: "name", maxlength: "200", autocomplete: "off" })),
        h("div", { class: "field wide" }, h("label", { for: `${key}-dialog-phone`, text: "Téléphone" }),
          h("input", { id: `${key}-dialog-phone`, name: "phone", type: "tel", maxlength: "40", autocomplete: "off" })),
        h("div", { class: "field wide buttons" },
          h("button", { type: "submit", class: "btn btn-primary", value: "save", text: "Enregistrer le client" }),
          h("button", { type: "button", class: "btn btn-light", value: "cancel", text: "Annuler" }))));
    const form = dialog.querySelector("form");
    const flash = dialog.querySelector(".flash");
    let editing = null; // the client being corrected, or null for a new one

    function open(client) {
      editing = client;
      Jauge.clearFlash(flash);
      Jauge.clearErrors(form);
      dialog.querySelector("h2").textContent = client ? `Modifier le client ${client.name}` : "Nouveau client";
      form.elements.name.value = client ? client.name : "";
      form.elements.phone.value = client ? client.phone || "" : "";
      dialog.showModal();
      form.elements.name.focus();
    }
    const add = h("button", { type: "button", class: "btn btn-light btn-small", text: "Nouveau client…" });
    const change = h("button", { type: "button", class: "btn btn-light btn-small", text: "Modifier le client…" });
    add.addEventListener("click", () => open(null));
    change.addEventListener("click", async () => {
      if (!select.value) {
        Jauge.flash("Choisissez d'abord le client à modifier.", "warning");
        return;
      }
      const option = select.selectedOptions[0];
      open({ id: select.value, name: option.dataset.name || option.textContent, phone: option.dataset.phone || "" });
    });
    form.querySelector("button[value=cancel]").addEventListener("click", () => dialog.close());
    form.addEventListener("input", () => { Jauge.clearErrors(form); Jauge.clearFlash(flash); });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const body = { name: form.elements.name.value.trim(), phone: form.elements.phone.value.trim() };
      if (!body.name) {
        Jauge.showError(new Jauge.ApiError(422, "Données invalides : vérifiez les champs indiqués.",
          [{ field: "name", message: "le nom est obligatoire" }]), form, flash);
        return;
      }
      Jauge.busy(form.querySelector("button[type=submit]"), async () => {
        try {
          const client = editing
            ? await Jauge.api("PATCH", `/api/clients/${encodeURIComponent(editing.id)}`, body)
            : await Jauge.api("POST", "/api/clients", body);
          const option = remember(optionFor(client), client);
          const old = [...select.options].find((o) => o.value === client.id);
          if (old) old.replaceWith(option); else select.append(option);
          select.value = client.id;
          select.dispatchEvent(new Event("change", { bubbles: true }));
          dialog.close();
          Jauge.flash(editing ? `Client ${client.name} modifié.` : `Client ${client.name} créé.`, "success");
          if (onSaved) onSaved(client);
        } catch (err) {
          Jauge.showError(err, form, flash);
        }
      });
    });
    select.after(h("span", { class: "client-actions" }, add, " ", change));
    document.body.append(dialog);
  }

  // an option that knows its client's name and phone (for the dialog)
  function remember(option, client) {
    option.dataset.name = client.name;
    option.dataset.phone = client.phone || "";
    return option;
  }

  // fills `select` with the clients; returns them by id
  async function loadClients(select) {
    const data = await Jauge.api("GET", "/api/clients");
    const list = Array.isArray(data) ? data : data.items || [];
    select.append(...list.map((c) => remember(optionFor(c), c)));
    return new Map(list.map((c) => [String(c.id), c]));
  }

  return { tasks, queued, submitEdit, clientPicker, loadClients, EDITABLE };
})();
