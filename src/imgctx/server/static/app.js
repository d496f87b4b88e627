// The imgctx web app: three views (search, add images, duplicates) and the detail dialog, on
// the same HTTP and WebSocket API as every other client. No framework, no build step.

import * as add from "./add.js";
import { getJSON } from "./api.js";
import * as detail from "./detail.js";
import * as duplicates from "./duplicates.js";
import * as search from "./search.js";

const VIEWS = ["search", "add", "duplicates"];
let config = null;

function currentView() {
  const view = new URLSearchParams(location.search).get("view");
  return VIEWS.includes(view) ? view : "search";
}

function show(view) {
  for (const section of document.querySelectorAll("[data-view]")) section.hidden = section.dataset.view !== view;
  for (const link of document.querySelectorAll("nav [data-view-link]")) {
    if (link.dataset.viewLink === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.body.dataset.view = view;
  if (view === "add") add.show(config);
}

function navigate(view) {
  const url = view === "search" ? location.pathname : `${location.pathname}?view=${view}`;
  history.pushState(null, "", url);
  show(view);
  if (view === "search") search.restore();
}

async function start() {
  for (const link of document.querySelectorAll("[data-view-link]")) {
    link.addEventListener("click", (e) => {
      if (e.metaKey || e.ctrlKey || e.shiftKey) return;
      e.preventDefault();
      navigate(link.dataset.viewLink);
    });
  }
  try {
    config = await getJSON("/api/v1/ui/config"); // asks for the API key first when one is needed
    detail.setConfig(config);
  } catch (err) {
    document.getElementById("status").textContent = `The server did not answer: ${err.message}`;
  }
  search.init();
  detail.init();
  add.init(() => search.refresh());
  duplicates.init(() => search.refresh());
  window.addEventListener("popstate", () => {
    show(currentView());
    if (currentView() === "search") search.restore();
  });
  show(currentView());
  search.restore();
  document.body.dataset.ready = "true";
}

start();
