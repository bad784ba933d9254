/* /colis/<id>: one parcel's sheet (photo, dimensions, price and how it was reached,
   client, lot, tracking number, status), its edit form (a live update task, shown in a
   card: colis-edit.js) and its history from the audit trail (who, when, what). */
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { h, live } = Jauge;
  const colisId = Jauge.$("#colis-sheet").dataset.colisId;
  const form = Jauge.$("#colis-edit-form");
  let parcel = null;
  let clients = new Map();
  let prepared = null;
  const taskList = JaugeColis.tasks(Jauge.$("#tasks"), {
    onCompleted: () => { loadColis(); loadHistory(); },
  });

  const WHAT = {
    "colis.created": "Colis créé", "colis.updated": "Colis modifié", "task.cancelled": "Tâche annulée",
    "task.retried": "Tâche relancée", "task.retry_forced": "Tâche relancée par un administrateur",
  };
  const SHOWN = { ...Jauge.FIELDS, numero_suivi: "N° de suivi", client_name: "Client" };

  function value(field, v) {
    if (v === null || v === undefined || v === "") return "–";
    if (field === "type_transport") return Jauge.TRANSPORT[v] || v;
    if (field === "statut") return Jauge.COLIS_STATUT[v] || Jauge.LOT_STATUT[v] || v;
    if (field === "mode_paiement") return Jauge.PAIEMENT[v] || v;
    if (field === "image") return "photo";
    return String(v);
  }

  function fact(term, ...details) {
    return [h("dt", { text: term }), h("dd", {}, ...details)];
  }

  function showColis(c, lot) {
    const client = clients.get(String(c.client_id));
    const dims = [c.longueur, c.largeur, c.hauteur].map((v) => Jauge.number(v, 1)).join(" × ");
    const price = c.prix !== null && c.prix !== undefined ? `${Jauge.number(c.prix)} ${c.devise || ""}` : "en calcul…";
    Jauge.$("#colis-title").textContent = `Colis ${c.numero_suivi || ""}`;
    document.title = `Colis ${c.numero_suivi || ""} – Jauge`;
    Jauge.$("#colis-info").textContent = `créé le ${Jauge.dateTime(c.created_at)}` +
      (c.updated_at && c.updated_at !== c.created_at ? ` · modifié le ${Jauge.dateTime(c.updated_at)}` : "");
    const lotLink = Jauge.$("#lot-link");
    lotLink.href = `/lots/${encodeURIComponent(c.lot_id)}`;
    lotLink.textContent = `← Lot ${c.numero_lot || ""}`;
    Jauge.$("#colis-facts").replaceChildren(
      ...fact("N° de suivi", h("strong", { text: c.numero_suivi || "–" })),
      ...fact("Statut", Jauge.COLIS_STATUT[c.statut] || c.statut || "–"),
      ...fact("Client", client ? client.name : c.client_name || c.client_id,
        client && client.phone ? h("span", { class: "muted", text: ` · ${client.phone}` }) : ""),
      ...fact("Lot", h("a", { href: `/lots/${encodeURIComponent(c.lot_id)}`, text: c.numero_lot || c.lot_id }),
        lot ? h("span", { class: "muted", text: ` · ${Jauge.LOT_STATUT[lot.statut] || lot.statut}` }) : ""),
      ...fact("Transport", Jauge.TRANSPORT[c.type_transport] || c.type_transport),
      ...fact("Dimensions", `${dims} cm`),
      ...fact("Poids", `${Jauge.number(c.poids)} kg`),
      ...fact("Paiement", Jauge.PAIEMENT[c.mode_paiement] || c.mode_paiement || "–"),
      ...fact("Prix", h("strong", { id: "colis-prix", text: price }),
        c.prix_detail ? h("p", { class: "muted small", id: "colis-prix-detail", text: c.prix_detail }) : ""),
      ...fact("Description", c.description || "–"));
    const photo = Jauge.$("#colis-photo");
    photo.replaceChildren(c.image_url
      ? h("a", { href: c.image_url }, h("img", { src: `${c.image_url}${c.image_url.includes("?") ? "&" : "?"}v=${encodeURIComponent(c.updated_at || "")}`,
        alt: `Photo du colis ${c.numero_suivi || ""}`, width: "320" }))
      : h("figcaption", { class: "muted", text: "Pas de photo" }));
  }

  function fillForm(c, lot) {
    for (const name of JaugeColis.EDITABLE) if (form.elements[name]) form.elements[name].value = c[name] ?? "";
    const open = !lot || lot.statut === "ouvert";
    for (const el of form.elements) el.disabled = !open;
    Jauge.$("#edit-hint").textContent = open
      ? "Seuls les champs changés sont envoyés. La modification répond tout de suite ; le prix est recalculé en arrière-plan et la progression s'affiche ci-dessous."
      : `Le lot ${lot.numero_lot} est ${Jauge.LOT_STATUT[lot.statut].toLowerCase()} : ce colis ne peut plus être modifié.`;
  }

  async function loadColis() {
    try {
      parcel = await Jauge.api("GET", `/api/colis/${encodeURIComponent(colisId)}`);
      let lot = null;
      try { lot = await Jauge.api("GET", `/api/lots/${encodeURIComponent(parcel.lot_id)}`); } catch (err) { lot = null; }
      showColis(parcel, lot);
      fillForm(parcel, lot);
    } catch (err) {
      Jauge.showError(err);
    }
  }

  let before = null; // the history's next (older) page
  async function loadHistory(more) {
    const body = Jauge.$("#history tbody");
    try {
      const query = more && before ? `?before=${before}` : "";
      const page = await Jauge.api("GET", `/api/colis/${encodeURIComponent(colisId)}/history${query}`);
      const rows = page.entries.map((e) => h("tr", { "data-what": e.what },
        h("td", { text: Jauge.dateTime(e.at) }),
        h("td", { text: e.who || "–" }),
        h("td", { text: WHAT[e.what] || e.what }),
        h("td", {}, ...Object.entries(e.changes || {})
          .filter(([field]) => !(field === "client_id" && e.changes.client_name)) // the name says it
          .map(([field, [from, to]]) =>
          h("div", { text: e.what === "colis.created" ? `${SHOWN[field] || field} : ${value(field, to)}`
            : `${SHOWN[field] || field} : ${value(field, from)} → ${value(field, to)}` })))));
      if (more) body.append(...rows);
      else body.replaceChildren(...(rows.length ? rows : [h("tr", { class: "empty" }, h("td", { colspan: "4", text: "Aucun changement enregistré." }))]));
      before = page.next;
      Jauge.$("#history-more").hidden = !before;
    } catch (err) {
      body.replaceChildren(h("tr", { class: "empty" }, h("td", { colspan: "4", class: "error-text", role: "alert", text: err.message })));
    }
  }
  Jauge.$("#history-more").addEventListener("click", () => loadHistory(true));

  form.image.addEventListener("change", () => {
    const file = form.image.files[0];
    prepared = file ? JaugeUploads.prepare(file) : null;
    if (prepared) prepared.catch(() => null);
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    Jauge.clearFlash();
    Jauge.clearErrors(form);
    if (!parcel) return;
    Jauge.busy(form.querySelector("button[type=submit]"), async () => {
      try {
        const job = await JaugeColis.submitEdit(parcel, form, taskList, prepared);
        prepared = null;
        form.image.value = "";
        form.image.dispatchEvent(new Event("change", { bubbles: true }));
        Jauge.flash(`Modification du colis ${parcel.numero_suivi || ""} ajoutée à la file (tâche ${job.id}).`, "success");
      } catch (err) {
        Jauge.showError(err, form);
      }
    });
  });

  JaugeColis.clientPicker(form.client_id, { onSaved: (client) => { clients.set(String(client.id), client); } });
  JaugeColis.loadClients(form.client_id)
    .then((found) => { clients = found; }, (err) => Jauge.showError(err))
    .then(loadColis);
  loadHistory();
  live.connect();
});
