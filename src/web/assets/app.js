// Roster's page script: everything works without it; it adds drag and drop to the upload form
// and live progress bars to running imports and exports.
"use strict";

// A file dropped anywhere on the drop zone becomes the file input's file.
function setUpDropZone(zone) {
  const input = zone.querySelector("input[type=file]");
  if (!input) return;
  const hint = zone.querySelector(".hint");
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    if (event.dataTransfer && event.dataTransfer.files.length > 0) {
      input.files = event.dataTransfer.files;
      if (hint) hint.textContent = "Chosen: " + input.files[0].name;
    }
  });
}

// Asks for a job's status until it is no longer running, then shows the finished page.
function pollProgress(box) {
  const url = box.getAttribute("data-poll");
  const bar = box.querySelector("progress");
  const count = box.querySelector("[data-done]");
  const tick = async () => {
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!response.ok) throw new Error("status " + response.status);
      const job = await response.json();
      if (job.status !== "running") {
        window.location.reload();
        return;
      }
      if (bar && typeof job.total === "number" && job.total > 0) bar.max = job.total;
      if (bar && typeof job.done === "number") bar.value = job.done;
      if (count && typeof job.done === "number") count.textContent = String(job.done);
    } catch (error) {
      // A failed poll is retried on the next tick; the page stays as it was.
    }
    window.setTimeout(tick, 500);
  };
  window.setTimeout(tick, 300);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-dropzone]").forEach(setUpDropZone);
  document.querySelectorAll("[data-poll]").forEach(pollProgress);
});
