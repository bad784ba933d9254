/* /lots: the lots (newest day first, by number within a day, a page at a time with the
   API's cursor), each with its parcel count and total, and a form to open a new one. */
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { h } = Jauge;
  const body = Jauge.$("#lots tbody");

  function row(lot) {
    return h("tr", { "data-lot-id": lot.id },
      h("td", {}, h("a", { href: `/lots/${encodeURIComponent(lot.id)}`, text: lot.numero_lot || lot.id })),
      h("td", { text: Jauge.TRANSPORT[lot.type_lot] || lot.type_lot }),
      h("td", {}, h("span", { class: `badge badge-lot-${lot.statut}`, text: Jauge.LOT_STATUT[lot.statut] || lot.statut })),
      h("td", { class: "num", "data-col": "count", text: String(lot.colis_count || 0) }),
      h("td", { class: "num", "data-col": "total", text: `${Jauge.number(lot.total_prix || 0)} ${lot.devise || ""}`.trim() }),
      h("td", { text: Jauge.dateTime(lot.created_at) }));
  }

  const more = Jauge.$("#lots-more");
  let cursor = null;

  async function load(next) {
    try {
      const data = await Jauge.api("GET", next ? `/api/lots?cursor=${encodeURIComponent(next)}` : "/api/lots");
      const lots = Array.isArray(data) ? data : data.items || [];
      cursor = Array.isArray(data) ? null : data.next_cursor;
      more.hidden = !cursor;
      if (next) body.append(...lots.map(row));
      else body.replaceChildren(...(lots.length ? lots.map(row)
        : [h("tr", { class: "empty" }, h("td", { colspan: "6", text: "Aucun lot pour l'instant." }))]));
    } catch (err) {
      body.replaceChildren(h("tr", { class: "empty" }, h("td", { colspan: "6", class: "error-text", role: "alert", text: err.message })));
    }
  }
  more.addEventListener("click", () => Jauge.busy(more, () => load(cursor)));

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
