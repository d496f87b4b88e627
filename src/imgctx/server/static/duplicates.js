// Duplicates review: groups side by side, the member to keep chosen by a keep policy (per
// group), a dry-run summary, then apply with confirmation.

import { el, formatBytes, getJSON, request, showImage, thumb } from "./api.js";
import { confirmChoice } from "./confirm.js";

const $ = (id) => document.getElementById(id);
let groups = []; // [{members: [{info, similarity}], keep: id, policy}]
let onChange = () => {};

const POLICIES = {
  first: (members) => members[0],
  largest: (members) => members.reduce((a, b) => (b.info.file_size > a.info.file_size ? b : a)),
  "highest-resolution": (members) => members.reduce((a, b) => {
    const pa = a.info.size[0] * a.info.size[1];
    const pb = b.info.size[0] * b.info.size[1];
    return pb > pa || (pb === pa && b.info.file_size > a.info.file_size) ? b : a;
  }),
};

function chooseKeep(group, policy) {
  group.policy = policy;
  group.keep = POLICIES[policy](group.members).info.id;
}

function renderGroup(group, n) {
  const name = `keep-${n}`;
  const select = el("select", { "aria-label": `Keep policy for group ${n + 1}` },
    ...Object.keys(POLICIES).map((p) => el("option", { value: p, selected: p === group.policy, text: `keep ${p.replace("-", " ")}` })));
  const members = group.members.map((m, i) => {
    const img = el("img", { alt: m.info.caption, loading: "lazy", width: 200, height: 200 });
    showImage(img, thumb(m.info.id, 256)).catch(() => img.classList.add("broken"));
    const radio = el("input", { type: "radio", name, value: m.info.id, checked: m.info.id === group.keep });
    radio.addEventListener("change", () => { group.keep = m.info.id; hideSummary(); });
    return el("label", { class: "member", dataset: { imageId: m.info.id } }, img,
      el("span", { class: "keep" }, radio, " keep"),
      el("span", { class: "name", text: m.info.filename }),
      el("span", { text: `${m.info.size[0]} × ${m.info.size[1]} px, ${formatBytes(m.info.file_size)}` }),
      el("span", { text: i === 0 ? "first indexed" : `similarity ${m.similarity.toFixed(3)}${m.exact ? " (identical file)" : ""}` }));
  });
  select.addEventListener("change", () => {
    chooseKeep(group, select.value);
    for (const input of document.getElementsByName(name)) input.checked = input.value === group.keep;
    hideSummary();
  });
  return el("fieldset", { class: "group", dataset: { group: String(n) } },
    el("legend", {}, `Group ${n + 1}: ${group.members.length} images `, select), ...members);
}

function hideSummary() { $("dup-summary").hidden = true; }

async function find(event) {
  event.preventDefault();
  hideSummary();
  $("dup-status").textContent = "Looking for duplicates…";
  $("dup-groups").replaceChildren();
  $("dup-actions").hidden = true;
  try {
    const threshold = Number($("dup-threshold").value);
    const report = await getJSON("/api/v1/duplicates/check", { method: "POST", json: { similarity_threshold: threshold } });
    const policy = $("dup-policy").value;
    groups = await Promise.all(report.duplicate_groups.map(async (g) => {
      const ids = [g.representative_id, ...g.duplicate_ids];
      const infos = await Promise.all(ids.map((id) => getJSON(`/api/v1/images/info/${encodeURIComponent(id)}`)));
      const members = infos.map((info, i) => ({ info, similarity: i ? g.similarity_scores[i - 1] : 1, exact: i ? g.exact[i - 1] : true }));
      const group = { members };
      chooseKeep(group, policy);
      return group;
    }));
    $("dup-groups").replaceChildren(...groups.map(renderGroup));
    $("dup-status").textContent = groups.length
      ? `${groups.length} groups, ${report.total_duplicates} duplicates among ${report.total_images} images.`
      : `No duplicates among ${report.total_images} images at ${threshold}.`;
    $("dup-actions").hidden = !groups.length;
  } catch (err) {
    $("dup-status").textContent = `Failed: ${err.message}`;
  }
}

function plan() {
  return groups.flatMap((g) => g.members.filter((m) => m.info.id !== g.keep).map((m) => m.info));
}

function review() {
  const goes = plan();
  const files = $("dup-delete-files").checked;
  const text = $("dup-summary-text");
  text.replaceChildren(
    el("p", { text: `Nothing has changed yet. Applying keeps ${groups.length} images and removes ${goes.length} `
      + `record${goes.length === 1 ? "" : "s"}${files ? " and deletes their files" : " (the files stay on disk)"}:` }),
    el("ul", {}, ...goes.map((info) => el("li", { dataset: { imageId: info.id }, text: info.path }))));
  $("dup-summary").hidden = false;
  $("dup-apply").focus();
}

async function apply() {
  const goes = plan();
  const files = $("dup-delete-files").checked;
  const choice = await confirmChoice(
    `Remove ${goes.length} records${files ? " and delete their files" : ""}? This cannot be undone.`,
    [{ value: "apply", label: files ? "Remove and delete files" : "Remove records", danger: true }]);
  if (choice !== "apply") return;
  let done = 0;
  const failed = [];
  for (const info of goes) {
    try {
      await request(`/api/v1/images/${encodeURIComponent(info.id)}?delete_file=${files}`, { method: "DELETE" });
      done++;
    } catch (err) {
      failed.push(`${info.path}: ${err.message}`);
    }
  }
  hideSummary();
  $("dup-groups").replaceChildren();
  $("dup-actions").hidden = true;
  groups = [];
  $("dup-status").textContent = `Removed ${done} records${files ? " and their files" : ""}.`
    + (failed.length ? ` ${failed.length} failed: ${failed.join("; ")}` : "");
  $("dup-status").dataset.state = "applied";
  onChange();
}

export function init(changed) {
  onChange = changed;
  $("dup-form").addEventListener("submit", find);
  $("dup-review").addEventListener("click", review);
  $("dup-apply").addEventListener("click", () => apply());
  $("dup-delete-files").addEventListener("change", hideSummary);
}
