/* Photos sent in the background, resumably: the parcel form answers before its photo
   has left the phone (agents are on slow mobile links).

   - shrink(): the photo made the size colis-svc keeps (1600 px, JPEG), the right way up
     (EXIF orientation applied by createImageBitmap), before it leaves: a 4 MB photo
     costs a few hundred KB on the wire;
   - prepare(): shrunk, an upload opened (POST /api/uploads) and the bytes kept in
     IndexedDB, so that a reload resumes instead of starting over;
   - start(): chunks of 128 KB at known offsets (PATCH /api/uploads/<id> with
     Upload-Offset, tus-like); after a dropped connection it asks where the upload stands
     (HEAD) and goes on from there, retrying with backoff and as soon as the browser is
     back online;
   - on(): progress for the task card ("Envoi de la photo · 45 %"), from the bytes the
     browser knows it has sent.

   The server still checks what arrives, and colis-svc decodes and re-encodes it. */
"use strict";

(() => {
  const CHUNK = 128 * 1024;
  const MAX_SIDE = 1600; // colis-svc's JAUGE_IMAGE_MAX_SIDE: more would be thrown away
  const QUALITY = 0.85;
  const DB_NAME = "jauge-uploads";
  const STORE = "pending";
  const listeners = new Set();
  const running = new Map(); // upload id -> promise of its send loop
  const state = new Map(); // upload id -> last progress sent to listeners
  const prepared = new Map(); // upload id -> its entry, should IndexedDB be unavailable

  /* ---------- IndexedDB: the bytes still to send survive a reload ---------- */

  let dbPromise = null;
  function db() {
    dbPromise ??= new Promise((resolve, reject) => {
      const request = indexedDB.open(DB_NAME, 1);
      request.onupgradeneeded = () => request.result.createObjectStore(STORE, { keyPath: "id" });
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    return dbPromise;
  }
  async function tx(mode, work) {
    const store = (await db()).transaction(STORE, mode).objectStore(STORE);
    return new Promise((resolve, reject) => {
      const request = work(store);
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  }
  const save = (entry) => tx("readwrite", (s) => s.put(entry)).catch(() => null);
  const forget = (id) => tx("readwrite", (s) => s.delete(id)).catch(() => null);
  const load = (id) => tx("readonly", (s) => s.get(id)).catch(() => null);
  const all = () => tx("readonly", (s) => s.getAll()).catch(() => []);

  /* ---------- the photo made small, the right way up ---------- */

  async function shrink(file) {
    let bitmap;
    try {
      bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
    } catch (err) {
      return file; // a kind this browser cannot decode: sent as it is, the server decides
    }
    const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(bitmap.width * scale));
    canvas.height = Math.max(1, Math.round(bitmap.height * scale));
    const context = canvas.getContext("2d");
    context.imageSmoothingQuality = "high";
    context.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    bitmap.close();
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", QUALITY));
    return blob && blob.size < file.size * 1.2 ? blob : file;
  }

  /* ---------- the upload ---------- */

  function notify(entry, fields) {
    const update = { id: entry.id, task_id: entry.task_id || null, size: entry.size,
      sent: 0, status: "sending", ...state.get(entry.id), ...fields };
    update.percent = update.size ? Math.floor((100 * update.sent) / update.size) : 0;
    state.set(entry.id, update);
    for (const fn of listeners) fn(update);
  }

  class UploadError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function offsetOf(id) {
    let response;
    try {
      response = await fetch(`/api/uploads/${id}`, { method: "HEAD", credentials: "same-origin", cache: "no-store" });
    } catch (err) {
      throw new UploadError(0, "Connexion perdue");
    }
    if (!response.ok) throw new UploadError(response.status, "Envoi introuvable : renvoyez la photo.");
    return Number(response.headers.get("Upload-Offset") || 0);
  }

  // one chunk; resolves with the server's offset. XHR, for the bytes-sent progress.
  function sendChunk(entry, offset, chunk) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("PATCH", `/api/uploads/${entry.id}`);
      xhr.setRequestHeader("Upload-Offset", String(offset));
      xhr.setRequestHeader("Upload-Length", String(entry.size));
      xhr.setRequestHeader("Content-Type", "application/offset+octet-stream");
      xhr.timeout = 120000;
      xhr.upload.onprogress = (event) => notify(entry, { sent: offset + event.loaded, status: "sending" });
      xhr.onload = () => {
        const at = Number(xhr.getResponseHeader("Upload-Offset"));
        if ((xhr.status === 204 || xhr.status === 409) && Number.isFinite(at)) resolve(at);
        else {
          let detail = "";
          try { detail = JSON.parse(xhr.responseText).detail || ""; } catch (err) { /* not JSON */ }
          reject(new UploadError(xhr.status, detail || `Envoi refusé (${xhr.status}).`));
        }
      };
      xhr.onerror = xhr.ontimeout = xhr.onabort = () => reject(new UploadError(0, "Connexion perdue"));
      xhr.send(chunk);
    });
  }

  const pause = (ms) => new Promise((resolve) => {
    const done = () => { clearTimeout(timer); window.removeEventListener("online", done); resolve(); };
    const timer = setTimeout(done, ms);
    window.addEventListener("online", done);
  });

  async function sendLoop(entry) {
    let delay = 1000;
    for (;;) {
      try {
        let offset = await offsetOf(entry.id);
        notify(entry, { sent: offset, status: "sending" });
        while (offset < entry.size) {
          offset = await sendChunk(entry, offset, entry.blob.slice(offset, offset + CHUNK));
          notify(entry, { sent: offset, status: "sending" });
          delay = 1000;
        }
        await forget(entry.id);
        notify(entry, { sent: entry.size, status: "done" });
        return;
      } catch (err) {
        const status = err instanceof UploadError ? err.status : 0;
        if (status === 401) {
          // the bytes stay in IndexedDB: the next visit after signing in resumes them
          notify(entry, { status: "error", message: "Session expirée : reconnectez-vous pour finir l'envoi de la photo." });
          return;
        }
        if (status && status < 500 && status !== 408 && status !== 429) {
          await forget(entry.id);
          notify(entry, { status: "error", message: err.message });
          return;
        }
        notify(entry, { status: "retrying", message: "Connexion perdue : l'envoi reprendra tout seul." });
        await pause(delay);
        delay = Math.min(delay * 2, 8000);
      }
    }
  }

  window.JaugeUploads = {
    shrink,

    // shrinks the photo, opens its upload and keeps its bytes; {id, size, original}
    async prepare(file) {
      const blob = await shrink(file);
      const type = blob.type || file.type || "application/octet-stream";
      const opened = await Jauge.api("POST", "/api/uploads", { type, size: blob.size });
      const entry = { id: opened.id, blob, size: blob.size, type, name: file.name,
        original: file.size, created_at: new Date().toISOString() };
      prepared.set(entry.id, entry);
      await save(entry);
      return { id: entry.id, size: entry.size, original: file.size };
    },

    // the task the upload feeds (kept with it, for a reload), then its bytes go up
    async attach(id, fields) {
      const entry = (await load(id)) || prepared.get(id);
      prepared.delete(id);
      if (!entry) return;
      Object.assign(entry, fields);
      await save(entry);
      this.start(entry);
    },

    start(entry) {
      if (!running.has(entry.id)) {
        running.set(entry.id, sendLoop(entry).finally(() => running.delete(entry.id)));
      }
      return running.get(entry.id);
    },

    // a file to import, sent in the background (not kept for a reload: the import is
    // asked for once its files are in); resolves with its last progress
    async sendFile(file, opened) {
      if (!file.size) return { id: null, status: "error", message: "fichier vide" };
      const upload = await Jauge.api("POST", "/api/uploads", {
        type: file.type || "application/octet-stream", size: file.size, purpose: "import", name: file.name });
      const entry = { id: upload.id, blob: file, size: file.size, name: file.name };
      if (opened) opened(entry.id);
      notify(entry, { sent: 0, status: "sending" });
      await this.start(entry);
      return state.get(entry.id);
    },

    // uploads left unfinished (a reload, a closed tab) that feed a task
    async pending() {
      return (await all()).filter((e) => e.task_id);
    },

    // the photo's own progress in a task card, from the bytes this browser has sent
    line(photo) {
      const { h } = Jauge;
      const kb = (n) => `${Jauge.number(Math.round(n / 1024), 0)} Ko`;
      const text = photo.status === "done" ? `Photo envoyée (${kb(photo.size)})`
        : photo.status === "error" ? `Envoi de la photo impossible : ${photo.message}`
          : photo.status === "retrying" ? `Envoi de la photo interrompu · ${photo.percent} % : ${photo.message}`
            : `Envoi de la photo · ${photo.percent} %`;
      return h("div", { class: `task-upload upload-${photo.status}`, "data-upload-id": photo.id,
        "data-upload-status": photo.status },
      Jauge.bar(photo.percent, `Envoi de la photo de la tâche ${photo.task_id}`),
      h("p", { class: photo.status === "error" ? "task-error" : "muted small", text }));
    },

    progress(id) {
      return state.get(id) || null;
    },

    on(fn) {
      listeners.add(fn);
    },
  };
})();
