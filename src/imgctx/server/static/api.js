// The API on this origin: JSON over fetch, WebSockets, images; the API key asked for once.

const KEY = "imgctx.apiKey";
let asking = null;

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export const apiKey = () => localStorage.getItem(KEY);

/** Show the key dialog (once for all callers waiting at the same time); resolves when saved. */
export function askKey(message) {
  if (!asking) {
    asking = new Promise((resolve) => {
      const dialog = document.getElementById("key-dialog");
      const input = document.getElementById("key-input");
      document.getElementById("key-message").textContent = message;
      input.value = "";
      dialog.addEventListener("close", () => {
        if (input.value) localStorage.setItem(KEY, input.value);
        asking = null;
        resolve();
      }, { once: true });
      dialog.showModal();
      input.focus();
    });
  }
  return asking;
}

function headers(extra = {}) {
  const key = apiKey();
  return key ? { ...extra, "X-API-Key": key } : extra;
}

/** fetch() with the key; a 401 asks for the key and tries again (three tries at most). */
export async function request(path, { method = "GET", json, body, signal } = {}) {
  for (let attempt = 0; attempt < 3; attempt++) {
    const init = { method, signal, headers: headers() };
    if (json !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(json);
    } else if (body !== undefined) {
      init.body = body;
    }
    const response = await fetch(path, init);
    if (response.status === 401 && attempt < 2) {
      await askKey(attempt ? "That key was not accepted. Try again." : "This server needs an API key.");
      continue;
    }
    if (!response.ok) {
      let data = null;
      try { data = await response.json(); } catch { /* not JSON */ }
      throw new ApiError(response.status, data);
    }
    return response;
  }
  throw new ApiError(401, { message: "no valid API key" });
}

export const getJSON = async (path, options) => (await request(path, options)).json();

/** A WebSocket to ``path`` on this origin, with the key as ``api_key`` when there is one. */
export function socket(path) {
  const url = new URL(path, location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  const key = apiKey();
  if (key) url.searchParams.set("api_key", key);
  return new WebSocket(url);
}

const blobs = new Map();

/** Point an <img> at an API image. Without a key, directly (the browser caches it, with its
 * ETag); with one, through fetch() and a blob: URL, since an <img> cannot send a header. */
export async function showImage(img, path) {
  if (!apiKey()) {
    img.src = path;
    return;
  }
  let url = blobs.get(path);
  if (!url) {
    const response = await request(path);
    url = URL.createObjectURL(await response.blob());
    if (blobs.size > 500) {
      for (const [k, v] of blobs) { URL.revokeObjectURL(v); blobs.delete(k); if (blobs.size < 400) break; }
    }
    blobs.set(path, url);
  }
  img.src = url;
}

/** Save a file from the API (download with the key when one is needed). */
export async function download(path, filename) {
  const a = document.createElement("a");
  a.download = filename;
  if (apiKey()) {
    const response = await request(path);
    a.href = URL.createObjectURL(await response.blob());
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  } else {
    a.href = path;
  }
  document.body.append(a);
  a.click();
  a.remove();
}

/** Upload one file with progress (XMLHttpRequest: fetch() reports no upload progress). */
export function upload(file, onProgress) {
  const send = () => new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/v1/images/upload");
    const key = apiKey();
    if (key) xhr.setRequestHeader("X-API-Key", key);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    xhr.onload = () => {
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) resolve(data);
      else reject(new ApiError(xhr.status, data));
    };
    xhr.onerror = () => reject(new ApiError(0, { message: "the upload failed (network)" }));
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("process_immediately", "true");
    xhr.send(form);
  });
  return send().catch(async (err) => {
    if (err.status !== 401) throw err;
    await askKey("This server needs an API key.");
    return send();
  });
}

export const thumb = (id, size = 256) => `/api/v1/images/${encodeURIComponent(id)}/thumbnail?size=${size}`;

export function formatBytes(n) {
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

/** Element helper: el("li", {class: "x", dataset: {imageId: id}}, child, "text"). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}
