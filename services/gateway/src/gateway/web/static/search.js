/* The header's search box: a parcel by tracking number or a lot by number (GET
   /api/search). One exact match opens its page; parcels one slip away are offered as
   links; nothing found says so under the box. */
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { h, $ } = Jauge;
  const form = $("#recherche");
  if (!form) return;
  const input = $("#recherche-q", form);
  const out = $("#recherche-resultats", form);

  function show(...children) {
    out.replaceChildren(...children);
    out.hidden = children.length === 0;
  }

  function label(item) {
    if (item.type === "lot") return `Lot ${item.numero}`;
    return `Colis ${item.numero}` + (item.numero_lot ? ` (lot ${item.numero_lot})` : "");
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const q = input.value.trim();
    if (!q) {
      show(h("p", { text: "Saisissez un numéro de suivi ou de lot." }));
      input.focus();
      return;
    }
    show(h("p", { text: "Recherche…" }));
    let found;
    try {
      found = await Jauge.api("GET", "/api/search?q=" + encodeURIComponent(q));
    } catch (err) {
      show(h("p", { class: "field-error", text: err.message }));
      return;
    }
    const items = found.items;
    if (items.length === 1 && items[0].exact) {
      location.assign(items[0].url);
      return;
    }
    if (items.length === 0) {
      show(h("p", { text: `Aucun colis ni lot ne correspond à « ${q} ».` }));
      return;
    }
    show(
      h("p", { text: "Numéro introuvable tel quel. Vouliez-vous dire :" }),
      h("ul", {}, items.map((item) => h("li", {}, h("a", { href: item.url, text: label(item) }))))
    );
  });

  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !out.hidden) show();
  });
});
