/* Paged, filtered lists (the dashboard's three lists, the imports list): a filter form
   kept in the page's address (?lot=…&day=…, so a filtered view can be shared or
   reloaded), and "Précédent" / "Suivant" buttons that follow the API's `next_cursor`. */
"use strict";

(function () {
  const { h } = Jauge;

  // the form's non-empty fields, as query parameters
  function filtersOf(form) {
    const params = new URLSearchParams();
    for (const [name, value] of new FormData(form)) {
      if (String(value).trim()) params.set(name, String(value).trim());
    }
    return params;
  }

  // the filters in the address fill the form (after its options are there)
  function fillForm(form) {
    const params = new URLSearchParams(location.search);
    for (const el of form.elements) {
      if (el.name && params.has(el.name)) el.value = params.get(el.name);
    }
  }

  // the form's filters into the address, without reloading (keeps ?taille=)
  function remember(form) {
    const params = filtersOf(form);
    const size = new URLSearchParams(location.search).get("taille");
    if (size) params.set("taille", size);
    const query = params.toString();
    history.replaceState(null, "", location.pathname + (query ? "?" + query : ""));
  }

  // page size: 20, or ?taille= (1 to 100) for a shorter list
  function pageSize() {
    const size = parseInt(new URLSearchParams(location.search).get("taille"), 10);
    return size >= 1 && size <= 100 ? size : 20;
  }

  // one list's pages: `load(cursor)` shows a page and returns its `next_cursor`
  class Pager {
    constructor(anchor, label, load) {
      this.load = load;
      this.cursors = [null]; // the cursor of each page up to the one shown
      this.nextCursor = null;
      this.prev = h("button", { type: "button", class: "btn btn-light", text: "Précédent",
        onclick: () => this.go(-1) });
      this.next = h("button", { type: "button", class: "btn btn-light", text: "Suivant",
        onclick: () => this.go(1) });
      this.where = h("span", { class: "muted small", "aria-live": "polite" });
      this.nav = h("nav", { class: "pager", "aria-label": `Pages : ${label}`, hidden: true },
        this.prev, this.where, this.next);
      anchor.after(this.nav);
    }

    get onFirstPage() { return this.cursors.length === 1; }

    reset() {
      this.cursors = [null];
      return this.show();
    }

    go(step) {
      if (step > 0 && this.nextCursor) this.cursors.push(this.nextCursor);
      else if (step < 0 && this.cursors.length > 1) this.cursors.pop();
      else return Promise.resolve();
      return Jauge.busy(step > 0 ? this.next : this.prev, () => this.show());
    }

    async show() {
      try {
        this.nextCursor = await this.load(this.cursors[this.cursors.length - 1]);
      } catch (err) {
        Jauge.showError(err);
        return;
      }
      this.prev.hidden = this.onFirstPage;
      this.next.hidden = !this.nextCursor;
      this.where.textContent = `Page ${this.cursors.length}`;
      this.nav.hidden = this.onFirstPage && !this.nextCursor;
    }
  }

  // one page of a list from the API (`path` and its query, without `cursor`): a page
  // that a rare filter left empty, with more to read after it, is followed at once (a
  // page of the API reads a bounded number of entries, so it may come back empty)
  async function fetchPage(path, params, cursor, hops = 10) {
    let data;
    for (let hop = 0; hop < hops; hop++) {
      if (cursor) params.set("cursor", cursor);
      data = await Jauge.api("GET", path + "?" + params);
      const items = Array.isArray(data) ? data : data.items || [];
      cursor = Array.isArray(data) ? null : data.next_cursor;
      if (items.length || !cursor) break;
    }
    return data;
  }

  window.JaugePager = { Pager, filtersOf, fillForm, remember, pageSize, fetchPage };
})();
