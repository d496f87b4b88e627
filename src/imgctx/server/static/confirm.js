// A confirmation in the page's own dialog: resolves with the chosen value, or "cancel".

import { el } from "./api.js";

export function confirmChoice(text, choices) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-choices").replaceChildren(...choices.map((c) =>
    el("button", { value: c.value, class: c.danger ? "danger" : null, text: c.label })));
  dialog.returnValue = "cancel";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue || "cancel"), { once: true });
    dialog.showModal();
  });
}
