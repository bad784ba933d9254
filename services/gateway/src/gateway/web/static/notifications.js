/* The bell on every page: unread count, the list (GET /api/notifications), a toast for
   each new notification pushed on the `notifications` topic, and, once the agent allows
   it with the button, the browser's own notification while the tab is hidden. */
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { h, live } = Jauge;
  const bell = Jauge.$("#bell");
  if (!bell) return;
  const panel = Jauge.$("#bell-panel");
  const list = Jauge.$("#bell-list");
  const count = Jauge.$("#bell-count");
  const more = Jauge.$("#bell-more");
  const allow = Jauge.$("#bell-allow");
  const shown = new Map(); // id -> notification, newest first by insertion below
  let unread = 0;
  let cursor = null;

  function setUnread(n) {
    unread = Math.max(0, n);
    count.textContent = String(unread);
    count.hidden = unread === 0;
    bell.setAttribute("aria-label", unread ? `Notifications : ${unread} non lue${unread > 1 ? "s" : ""}` : "Notifications");
  }

  function item(note) {
    const button = h("button", { type: "button", class: "note" + (note.level === "error" ? " error" : ""), "data-id": note.id },
      note.message, h("time", { datetime: note.created_at, text: Jauge.dateTime(note.created_at) }));
    button.addEventListener("click", () => open(note));
    return h("li", { class: note.read ? "" : "unread", "data-id": note.id }, button);
  }

  function render() {
    list.replaceChildren();
    if (!shown.size) list.append(h("li", { class: "muted", text: "Aucune notification." }));
    for (const note of shown.values()) list.append(item(note));
    more.hidden = !cursor;
  }

  async function open(note) {
    if (!note.read) {
      try {
        await Jauge.api("POST", `/api/notifications/${encodeURIComponent(note.id)}/read`);
        note.read = true;
        setUnread(unread - 1);
        render();
      } catch (err) { Jauge.showError(err); return; }
    }
    if (note.link && location.pathname !== note.link) location.assign(note.link);
  }

  async function load(next) {
    const query = next ? `?cursor=${encodeURIComponent(next)}` : "";
    const page = await Jauge.api("GET", `/api/notifications${query}`);
    for (const note of page.items) if (!shown.has(note.id)) shown.set(note.id, note);
    cursor = page.next_cursor;
    setUnread(page.unread);
    render();
  }

  function toast(note) {
    const box = h("div", { class: "toast" + (note.level === "error" ? " error" : ""), text: note.message });
    Jauge.$("#toasts").append(box);
    setTimeout(() => box.remove(), 8000);
    if (document.hidden && "Notification" in window && Notification.permission === "granted") {
      new Notification("Jauge", { body: note.message, tag: note.id });
    }
  }

  live.on((frame) => {
    if (frame.type !== "notification" || !frame.notification) return;
    const note = frame.notification;
    if (shown.has(note.id)) return;
    const rest = [...shown.entries()];
    shown.clear();
    shown.set(note.id, note);
    for (const [id, other] of rest) shown.set(id, other);
    setUnread(unread + 1);
    render();
    toast(note);
  });

  bell.addEventListener("click", () => {
    panel.hidden = !panel.hidden;
    bell.setAttribute("aria-expanded", String(!panel.hidden));
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !panel.hidden) { panel.hidden = true; bell.setAttribute("aria-expanded", "false"); bell.focus(); }
  });
  more.addEventListener("click", () => load(cursor).catch(Jauge.showError));
  // never asked unprompted: the agent chooses, with this button
  if ("Notification" in window && Notification.permission === "default") {
    allow.hidden = false;
    allow.addEventListener("click", async () => {
      await Notification.requestPermission();
      allow.hidden = true;
    });
  }

  live.subscribe("notifications");
  load().catch(() => { /* the page says so if the API is away; the bell stays quiet */ });
  // pages without live data of their own open the socket for the bell
  setTimeout(() => live.connect(), 0);
});
