// Search as you type (over /ws/search), browse newest first, "more like this", filter chips,
// minimum score, infinite scroll; the query and filters live in the URL.

import { el, getJSON, request, showImage, socket, thumb } from "./api.js";

const PAGE = 40;
const DEBOUNCE_MS = 100;
const $ = (id) => document.getElementById(id);

const state = {
  q: "", objects: [], min: 0, like: null, limit: PAGE,
  offset: 0, done: false, loading: false, seq: 0, items: [],
};
let ws = null;
let wsReady = null;
let wsRetries = 0;
let pending = null; // resolves the search in flight (by its id)

/** The current results (for the detail view's previous/next). */
export const results = () => state.items;

function connect() {
  ws = socket("/ws/search");
  wsReady = new Promise((resolve, reject) => {
    ws.onopen = () => { wsRetries = 0; resolve(ws); };
    ws.onerror = () => reject(new Error("the search connection failed"));
  });
  wsReady.catch(() => {});
  ws.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    if (pending && msg.id === pending.id) { pending.resolve(msg); pending = null; }
    // any other answer is for a query that has been replaced: dropped
  };
  ws.onclose = () => {
    if (pending) { pending.reject(new Error("the search connection closed")); pending = null; }
    ws = null;
    if (wsRetries < 5) setTimeout(() => { wsRetries++; if (!ws) connect(); }, 500 * 2 ** wsRetries);
  };
}

async function searchOverSocket(message) {
  if (!ws) connect();
  const open = await wsReady;
  return new Promise((resolve, reject) => {
    if (pending) pending.reject(new DOMException("replaced", "AbortError"));
    pending = { id: message.id, resolve, reject };
    open.send(JSON.stringify(message));
  });
}

function readURL() {
  const p = new URLSearchParams(location.search);
  state.q = p.get("q") || "";
  state.objects = (p.get("objects") || "").split(",").filter(Boolean);
  state.min = Number(p.get("min") || 0);
  state.like = p.get("like");
  state.limit = Math.min(100, Math.max(1, Number(p.get("limit")) || PAGE));
  $("q").value = state.q;
  $("min-score").value = String(state.min);
  $("min-score-value").textContent = state.min.toFixed(2);
}

function writeURL(push = false) {
  const p = new URLSearchParams(location.search);
  const set = (k, v) => (v ? p.set(k, v) : p.delete(k));
  set("q", state.q.trim());
  set("objects", state.objects.join(","));
  set("min", state.min ? String(state.min) : "");
  set("like", state.like);
  set("limit", state.limit !== PAGE ? String(state.limit) : "");
  p.delete("view");
  const url = `${location.pathname}${p.toString() ? `?${p}` : ""}`;
  if (url !== `${location.pathname}${location.search}`) history[push ? "pushState" : "replaceState"](null, "", url);
}

function tile(item) {
  const img = el("img", { alt: item.caption, loading: "lazy", decoding: "async", width: 256, height: 256 });
  showImage(img, thumb(item.id)).catch(() => img.classList.add("broken"));
  const score = typeof item.score === "number"
    ? el("span", { class: "score", title: scoreTitle(item), text: item.score.toFixed(2) }) : null;
  const open = el("button", { type: "button", class: "open", "aria-label": `${item.filename}: ${item.caption}` }, img);
  open.addEventListener("click", () => document.dispatchEvent(new CustomEvent("imgctx:open", { detail: item.id })));
  return el("li", { class: "tile", dataset: { imageId: item.id } }, open, score,
    el("span", { class: "name", text: item.filename }));
}

function scoreTitle(item) {
  const parts = Object.entries(item.scores || {}).map(([k, v]) => `${k} ${v.toFixed(3)}`);
  return parts.length ? `score ${item.score.toFixed(3)} (${parts.join(", ")})` : `score ${item.score.toFixed(3)}`;
}

function describe() {
  const n = state.items.length;
  const more = state.done ? "" : "+";
  const filter = state.objects.length ? ` tagged ${state.objects.join(" or ")}` : "";
  if (state.like) return `${n}${more} similar images${filter}`;
  if (state.q.trim()) return n ? `${n}${more} results for “${state.q.trim()}”${filter}` : `No results for “${state.q.trim()}”${filter}`;
  return n ? `${n}${more} images${filter}, newest first` : `No images${filter} yet: add some under “Add images”.`;
}

async function fetchPage(offset, seq) {
  const objects = state.objects.join(",");
  if (state.like) {
    const form = new FormData();
    form.append("image_id", state.like);
    form.append("limit", String(state.limit));
    form.append("offset", String(offset));
    if (objects) form.append("objects", objects);
    if (state.min) form.append("min_score", String(state.min));
    return (await request("/api/v1/search/image", { method: "POST", body: form })).json();
  }
  if (state.q.trim()) {
    const message = { type: "search", id: seq, query: state.q.trim(), limit: state.limit, offset };
    if (objects) message.objects = objects;
    if (state.min) message.min_score = state.min;
    const reply = await searchOverSocket(message);
    if (reply.type === "error") throw new Error(reply.message);
    return reply.results;
  }
  const p = new URLSearchParams({ order: "newest", limit: String(state.limit), offset: String(offset) });
  if (objects) p.set("objects", objects);
  return getJSON(`/api/v1/images/?${p}`);
}

/** Load the next page (or the first, with ``reset``); answers to replaced queries are dropped. */
async function load(reset) {
  if (reset) { state.offset = 0; state.done = false; }
  else if (state.loading || state.done) return;
  const seq = ++state.seq;
  state.loading = true;
  $("results").setAttribute("aria-busy", "true");
  try {
    const page = await fetchPage(state.offset, seq);
    if (seq !== state.seq) return;
    const grid = $("results");
    if (reset) { grid.replaceChildren(); state.items = []; }
    grid.append(...page.map(tile));
    state.items.push(...page);
    state.offset += page.length;
    state.done = page.length < state.limit;
    grid.dataset.query = state.like ? `like:${state.like}` : state.q.trim();
    grid.dataset.state = "done";
    $("status").textContent = describe();
    $("more").hidden = state.done;
  } catch (err) {
    if (err.name === "AbortError" || seq !== state.seq) return;
    $("status").textContent = `Search failed: ${err.message}`;
  } finally {
    if (seq === state.seq) {
      state.loading = false;
      $("results").removeAttribute("aria-busy");
    }
  }
  if (seq === state.seq && !state.done && nearBottom()) load(false);
}

function nearBottom() {
  const r = $("sentinel").getBoundingClientRect();
  return r.top < window.innerHeight + 400;
}

async function loadChips() {
  let objects = [];
  try { objects = await getJSON("/api/v1/objects?limit=24"); } catch { return; }
  const chosen = new Set(state.objects);
  for (const o of chosen) if (!objects.some((x) => x.label === o)) objects.push({ label: o, count: 0 });
  $("chips").replaceChildren(...objects.map((o) => el("button", {
    type: "button", class: "chip", "aria-pressed": String(chosen.has(o.label)), dataset: { object: o.label },
    onclick: () => toggleObject(o.label),
  }, o.label, el("span", { class: "count", text: String(o.count) }))));
}

function toggleObject(label) {
  const i = state.objects.indexOf(label);
  if (i >= 0) state.objects.splice(i, 1); else state.objects.push(label);
  for (const chip of $("chips").children) chip.setAttribute("aria-pressed", String(state.objects.includes(chip.dataset.object)));
  writeURL();
  load(true);
}

function showLike() {
  $("like-banner").hidden = !state.like;
  $("min-score").closest("label").classList.toggle("off", !state.q.trim() && !state.like);
}

/** Show images like this one (from the detail view). */
export function moreLike(id, filename) {
  state.like = id;
  state.q = "";
  $("q").value = "";
  $("like-text").textContent = `Images like ${filename}`;
  writeURL(true);
  showLike();
  load(true);
}

/** Remove a deleted image from the grid. */
export function forget(id) {
  state.items = state.items.filter((x) => x.id !== id);
  document.querySelector(`#results [data-image-id="${CSS.escape(id)}"]`)?.remove();
  $("status").textContent = describe();
  loadChips();
}

export function refresh() { loadChips(); load(true); }

export function restore() {
  readURL();
  showLike();
  if (state.like) {
    getJSON(`/api/v1/images/info/${encodeURIComponent(state.like)}`)
      .then((info) => { $("like-text").textContent = `Images like ${info.filename}`; }).catch(() => {});
  }
  loadChips();
  load(true);
}

export function init() {
  let timer = 0;
  $("q").addEventListener("input", () => {
    state.q = $("q").value;
    state.like = null;
    state.seq++; // an answer to the previous text is stale from now on
    clearTimeout(timer);
    timer = setTimeout(() => { writeURL(); showLike(); load(true); }, DEBOUNCE_MS);
  });
  $("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    clearTimeout(timer);
    state.q = $("q").value;
    writeURL();
    load(true);
  });
  $("min-score").addEventListener("input", () => {
    state.min = Number($("min-score").value);
    $("min-score-value").textContent = state.min.toFixed(2);
    clearTimeout(timer);
    timer = setTimeout(() => { writeURL(); load(true); }, DEBOUNCE_MS);
  });
  $("like-clear").addEventListener("click", () => { state.like = null; writeURL(true); showLike(); load(true); });
  $("more").addEventListener("click", () => load(false));
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) load(false);
  }, { rootMargin: "400px" }).observe($("sentinel"));
}
