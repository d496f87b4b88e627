// The detail view: large preview, caption, tags with scores, file facts, download, delete,
// "More like this"; left and right arrow keys move between the results.

import { download, el, formatBytes, getJSON, request, showImage, thumb } from "./api.js";
import { confirmChoice } from "./confirm.js";
import { forget, moreLike, results } from "./search.js";

const $ = (id) => document.getElementById(id);
let current = null;
let config = { caption_from_tags: false };

export function setConfig(c) { config = c; }

function fact(term, value) {
  return [el("dt", { text: term }), el("dd", { text: value })];
}

export async function open(id) {
  const dialog = $("detail");
  current = { id, info: null };
  $("detail-title").textContent = "…";
  if (!dialog.open) dialog.showModal();
  const info = await getJSON(`/api/v1/images/info/${encodeURIComponent(id)}`);
  if (current.id !== id) return; // moved on meanwhile
  current.info = info;
  const img = $("detail-img");
  img.alt = info.caption;
  img.removeAttribute("src");
  showImage(img, thumb(id, 1024)).catch(() => img.classList.add("broken"));
  $("detail-title").textContent = info.filename;
  $("detail-caption").textContent = info.caption;
  $("detail-caption-note").hidden = !config.caption_from_tags;
  $("detail-tags").tBodies[0].replaceChildren(...info.tags.map((t) => el("tr", {},
    el("th", { scope: "row", text: t.label }),
    el("td", {}, el("meter", { min: 0, max: 1, value: t.score, "aria-label": `${t.label} score` })),
    el("td", { text: t.score.toFixed(2) }))));
  if (!info.tags.length) $("detail-tags").tBodies[0].append(el("tr", {}, el("td", { text: "No tags" })));
  $("detail-facts").replaceChildren(
    ...fact("Path", info.path), ...fact("Size", `${info.size[0]} × ${info.size[1]} px`),
    ...fact("File size", formatBytes(info.file_size)), ...fact("Format", info.format),
    ...fact("Indexed", new Date(info.created_at).toLocaleString()), ...fact("Id", info.id));
  const list = results();
  const i = list.findIndex((x) => x.id === id);
  $("detail-pos").textContent = i >= 0 ? `${i + 1} of ${list.length}` : "";
  $("detail-prev").disabled = i <= 0;
  $("detail-next").disabled = i < 0 || i >= list.length - 1;
}

function step(delta) {
  const list = results();
  const i = list.findIndex((x) => x.id === current?.id);
  const next = list[i + delta];
  if (i >= 0 && next) open(next.id);
}

async function remove() {
  const info = current?.info;
  if (!info) return;
  const choice = await confirmChoice(`Delete ${info.filename}?`, [
    { value: "record", label: "Remove from the index" },
    { value: "file", label: "Remove and delete the file", danger: true },
  ]);
  if (choice !== "record" && choice !== "file") return;
  await request(`/api/v1/images/${encodeURIComponent(info.id)}?delete_file=${choice === "file"}`, { method: "DELETE" });
  const list = results();
  const i = list.findIndex((x) => x.id === info.id);
  forget(info.id);
  const next = list[i] || list[i - 1];
  if (next) open(next.id); else $("detail").close();
}

export function init() {
  const dialog = $("detail");
  $("detail-close").addEventListener("click", () => dialog.close());
  $("detail-prev").addEventListener("click", () => step(-1));
  $("detail-next").addEventListener("click", () => step(1));
  dialog.addEventListener("keydown", (e) => {
    if (e.target.closest("input, select, textarea")) return;
    if (e.key === "ArrowLeft") { e.preventDefault(); step(-1); }
    if (e.key === "ArrowRight") { e.preventDefault(); step(1); }
  });
  dialog.addEventListener("click", (e) => { if (e.target === dialog) dialog.close(); });
  $("detail-like").addEventListener("click", () => {
    if (!current?.info) return;
    const { id, filename } = current.info;
    dialog.close();
    moreLike(id, filename);
  });
  $("detail-download").addEventListener("click", () => {
    if (current?.info) download(`/api/v1/images/download/${encodeURIComponent(current.id)}`, current.info.filename);
  });
  $("detail-delete").addEventListener("click", () => remove().catch((err) => alertError(err)));
  document.addEventListener("imgctx:open", (e) => open(e.detail).catch((err) => alertError(err)));
}

function alertError(err) {
  $("detail-caption").textContent = `Failed: ${err.message}`;
}
