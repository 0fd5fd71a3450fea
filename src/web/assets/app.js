// Roster's page script: everything works without it; it adds drag and drop to the upload form,
// live progress bars to running imports, exports and batches, the Send form's live summary, and
// a confirmation before destructive buttons.
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

// As the Send form is filled in, asks the server for the summary (the batch's dry run) and
// shows it; a request still out when the form changes again is dropped.
function liveSummary(form) {
  const url = form.getAttribute("data-summary");
  const target = document.getElementById("send-summary");
  if (!url || !target) return;
  let timer = 0;
  let latest = 0;
  const refresh = async () => {
    const mine = ++latest;
    const data = new URLSearchParams(new FormData(form));
    data.set("action", "preview");
    try {
      const response = await fetch(url, { method: "POST", body: data, credentials: "same-origin" });
      if (!response.ok || mine !== latest) return;
      target.innerHTML = await response.text();
    } catch (error) {
      // The summary stays as it was; the Check button still works.
    }
  };
  const later = () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(refresh, 350);
  };
  form.addEventListener("input", later);
  form.addEventListener("change", later);
  if (form.querySelector("#body").value.trim() !== "") refresh();
}

// As a smart group's rule is typed, shows what it matches now, or where it goes wrong.
function liveRule(field) {
  const url = field.getAttribute("data-rule-check");
  const target = document.getElementById("rule-check");
  if (!url || !target) return;
  let timer = 0;
  let latest = 0;
  const refresh = async () => {
    const mine = ++latest;
    const data = new URLSearchParams({ csrf: field.getAttribute("data-csrf"), rule: field.value });
    try {
      const response = await fetch(url, { method: "POST", body: data, credentials: "same-origin" });
      if (!response.ok || mine !== latest) return;
      target.innerHTML = await response.text();
    } catch (error) {
      // Left as it was; saving still checks the rule.
    }
  };
  field.addEventListener("input", () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(refresh, 300);
  });
  if (field.value.trim() !== "") refresh();
}

// A box that ticks or clears every box of its name on the page; shown only where it works.
function tickAll(box) {
  const boxes = () => document.querySelectorAll(`input[type=checkbox][name="${box.dataset.tickAll}"]`);
  box.hidden = false;
  box.addEventListener("change", () => {
    boxes().forEach((other) => { other.checked = box.checked; });
  });
}

// A button that copies its id; shown only where the clipboard can be written.
function copyButton(button) {
  if (!navigator.clipboard) return;
  button.hidden = false;
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(button.dataset.copy);
      button.textContent = "Copied";
    } catch (error) {
      button.textContent = "Select it to copy";
    }
    window.setTimeout(() => { button.textContent = "Copy"; }, 2000);
  });
}

// A time-zone field left at UTC takes the browser's own zone.
function localZone(input) {
  try {
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone && input.value === "UTC") input.value = zone;
  } catch (error) {
    // Left at UTC.
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-summary]").forEach(liveSummary);
  document.querySelectorAll("[data-local-zone]").forEach(localZone);
  document.querySelectorAll("[data-rule-check]").forEach(liveRule);
  document.querySelectorAll("button[data-confirm]").forEach((button) => {
    button.addEventListener("click", (event) => {
      if (!window.confirm(button.getAttribute("data-confirm"))) event.preventDefault();
    });
  });
  document.querySelectorAll("[data-tick-all]").forEach(tickAll);
  document.querySelectorAll("button[data-copy]").forEach(copyButton);
  document.querySelectorAll("[data-dropzone]").forEach(setUpDropZone);
  document.querySelectorAll("[data-poll]").forEach(pollProgress);
});
