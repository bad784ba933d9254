/* /lots: the lots, and a form to open a new one. */
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { h } = Jauge;
  const body = Jauge.$("#lots tbody");

  function row(lot) {
    return h("tr", { "data-lot-id": lot.id },
      h("td", {}, h("a", { href: `/lots/${encodeURIComponent(lot.id)}`, text: lot.numero_lot || lot.id })),
      h("td", { text: Jauge.TRANSPORT[lot.type_lot] || lot.type_lot }),
      h("td", {}, h("span", { class: `badge badge-lot-${lot.statut}`, text: Jauge.LOT_STATUT[lot.statut] || lot.statut })),
      h("td", { text: Jauge.dateTime(lot.created_at) }));
  }

  async function load() {
    try {
      const data = await Jauge.api("GET", "/api/lots");
      const lots = Array.isArray(data) ? data : data.items || [];
      body.replaceChildren(...(lots.length ? lots.map(row)
        : [h("tr", { class: "empty" }, h("td", { colspan: "4", text: "Aucun lot pour l'instant." }))]));
    } catch (err) {
      body.replaceChildren(h("tr", { class: "empty" }, h("td", { colspan: "4", class: "error-text", role: "alert", text: err.message })));
    }
  }

  const form = Jauge.$("#lot-form");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    Jauge.clearFlash();
    Jauge.clearErrors(form);
    Jauge.busy(form.querySelector("button"), async () => {
      try {
        const lot = await Jauge.api("POST", "/api/lots", { type_lot: form.type_lot.value });
        Jauge.flash(`Lot ${lot.numero_lot} créé.`, "success");
        body.querySelector("tr.empty")?.remove();
        body.prepend(row(lot));
      } catch (err) {
        Jauge.showError(err, form);
      }
    });
  });
  load();
});
