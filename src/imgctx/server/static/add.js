// Adding images: upload (drag and drop or file picker, with progress) and indexing a folder
// in the background, with live progress from /ws/processing and the task list.

import { el, formatBytes, getJSON, request, socket, upload } from "./api.js";

const $ = (id) => document.getElementById(id);
let watching = null; // the task id whose progress the bar shows
let ws = null;
let retries = 0;
let refreshTimer = 0;
let onChange = () => {};

async function uploadAll(files) {
  for (const file of files) {
    const bar = el("progress", { max: 1, value: 0, "aria-label": `Uploading ${file.name}` });
    const note = el("span", { class: "note", text: formatBytes(file.size) });
    const item = el("li", { dataset: { filename: file.name } }, el("span", { class: "name", text: file.name }), bar, note);
    $("uploads").prepend(item);
    try {
      const body = await upload(file, (share) => { bar.value = share; });
      bar.value = 1;
      item.dataset.state = "done";
      item.dataset.imageId = body.image_id || "";
      note.textContent = body.was_duplicate ? `indexed (same picture as one already indexed) as ${body.file_path}`
        : `indexed as ${body.file_path}`;
      onChange();
    } catch (err) {
      item.dataset.state = "failed";
      note.textContent = `failed: ${err.message}`;
    }
  }
}

function showTask(task) {
  $("index-run").hidden = false;
  $("index-progress").value = task.progress;
  const state = task.status === "completed" ? "Done" : task.status[0].toUpperCase() + task.status.slice(1);
  let text = `${state}: ${task.message} (${Math.round(task.progress)}%)`;
  if (task.result) text += ` — ${task.result.processed} processed, ${task.result.skipped} skipped, ${task.result.failed} failed`;
  if (task.error) text += ` — ${task.error}`;
  $("index-progress-text").textContent = text;
  $("index-run").dataset.status = task.status;
}

function cell(text) { return el("td", { text: String(text) }); }

async function loadTasks() {
  let tasks;
  try { tasks = await getJSON("/api/v1/directories/tasks"); } catch { return; }
  const rows = tasks.reverse().slice(0, 50).map((t) => {
    const r = t.result;
    const failures = r && r.failures && r.failures.length
      ? el("details", {}, el("summary", { text: String(r.failed) }),
        el("ul", {}, ...r.failures.map((f) => el("li", { text: `${f.path}: ${f.reason}` }))))
      : null;
    return el("tr", { dataset: { taskId: t.task_id, status: t.status } },
      cell(t.directory_path || ""), cell(t.status), cell(`${Math.round(t.progress)}%`),
      cell(r ? r.processed : ""), cell(r ? r.skipped : ""), failures ? el("td", {}, failures) : cell(r ? r.failed : ""),
      cell(new Date(t.created_at).toLocaleString()));
  });
  $("tasks").tBodies[0].replaceChildren(...rows);
}

function listen() {
  ws = socket("/ws/processing");
  ws.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    if (!msg.task) return;
    if (msg.task_id === watching) {
      showTask(msg.task);
      if (msg.task.status === "completed") onChange();
    }
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(loadTasks, 250);
  };
  ws.onopen = () => { retries = 0; };
  ws.onclose = () => {
    ws = null;
    if (retries < 5) setTimeout(() => { retries++; if (!ws) listen(); }, 500 * 2 ** retries);
  };
}

async function startIndexing(event) {
  event.preventDefault();
  const json = { directory_path: $("folder").value.trim(), recursive: $("recursive").checked,
    force_reprocess: $("force").checked };
  $("index-run").hidden = false;
  $("index-progress").value = 0;
  $("index-progress-text").textContent = "Starting…";
  try {
    const task = await (await request("/api/v1/directories/process-async", { method: "POST", json })).json();
    watching = task.task_id;
    $("index-run").dataset.taskId = task.task_id;
    const now = await getJSON(`/api/v1/directories/task/${task.task_id}`); // in case it ran before we listened
    showTask(now);
    loadTasks();
  } catch (err) {
    $("index-run").dataset.status = "failed";
    $("index-progress-text").textContent = `Could not start: ${err.message}`;
  }
}

export function show(config) {
  if (!ws) listen();
  loadTasks();
  if (config) {
    $("roots").textContent = `Folders inside ${config.allowed_roots.join(", ")}; a relative path starts at ${config.allowed_roots[0]}.`;
    $("upload-hint").textContent = `Uploads go to ${config.upload_dir} and are indexed at once.`;
  }
}

export function init(changed) {
  onChange = changed;
  const zone = $("dropzone");
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    uploadAll([...e.dataTransfer.files]);
  });
  $("file-input").addEventListener("change", (e) => { uploadAll([...e.target.files]); e.target.value = ""; });
  $("index-form").addEventListener("submit", startIndexing);
}
