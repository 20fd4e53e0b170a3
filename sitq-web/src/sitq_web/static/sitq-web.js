// sitq-web: confirmations of actions, "select all", the live counts (polled every 2 s) and,
// on the first page of the task list, its rows (reloaded every 2 s while nothing is selected).
"use strict";

document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
});

document.addEventListener("change", (event) => {
  if (event.target.matches("[data-testid=select-all]")) {
    for (const box of document.querySelectorAll("input[name=ids]")) {
      box.checked = event.target.checked;
    }
  }
});

function formatAge(seconds) {
  const units = [["d", 86400], ["h", 3600], ["min", 60]];
  for (const [unit, size] of units) {
    if (seconds >= size) return (seconds / size).toFixed(1) + " " + unit;
  }
  return seconds < 10 ? seconds.toFixed(1) + " s" : Math.round(seconds) + " s";
}

function setText(element, text) {
  const target = element.querySelector("a") || element;
  if (target.textContent !== text) target.textContent = text;
}

function applySummary(summary) {
  for (const cell of document.querySelectorAll("[data-live=count]")) {
    const counts = summary.queues[cell.dataset.liveQueue] || {};
    setText(cell, String(counts[cell.closest("[data-status]").dataset.status] || 0));
  }
  for (const cell of document.querySelectorAll("[data-live=total]")) {
    setText(cell, String(summary.totals[cell.dataset.status] || 0));
  }
  for (const cell of document.querySelectorAll("[data-live=workers]")) {
    setText(cell, String(summary.workers.length));
  }
  for (const cell of document.querySelectorAll("[data-live=oldest-pending]")) {
    setText(cell, summary.oldest_pending ? formatAge(summary.oldest_pending.age) : "none");
  }
  document.body.dataset.liveUpdated = String(summary.read_at);
}

function refreshRows() {
  const table = document.querySelector("table[data-live-rows]");
  if (!table || document.hidden || document.querySelector("input[name=ids]:checked")) return;
  fetch(window.location.href, { credentials: "same-origin" })
    .then((response) => (response.ok ? response.text() : null))
    .then((html) => {
      if (!html || document.querySelector("input[name=ids]:checked")) return;
      const fresh = new DOMParser().parseFromString(html, "text/html");
      const rows = fresh.querySelector("table[data-live-rows] tbody");
      if (rows) table.querySelector("tbody").replaceWith(document.adoptNode(rows));
    })
    .catch(() => {});
}

function poll() {
  refreshRows();
  const root = document.body.dataset.root || "";
  fetch(root + "/api/summary", { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then((response) => (response.ok ? response.json() : null))
    .then((summary) => { if (summary) applySummary(summary); })
    .catch(() => {})
    .finally(() => window.setTimeout(poll, 2000));
}

if (document.body.dataset.livePage) {
  window.setTimeout(poll, 2000);
}
