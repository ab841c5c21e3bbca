// facedrop studio: refresh the live part of the page every second (changes show within 2 s).
// The fragment is swapped only when it changed; focus is put back on the same control.
(() => {
  "use strict";
  const live = document.getElementById("live");
  if (!live || !live.dataset.src) return;
  let last = live.innerHTML;
  // A control is found again after a swap by its data-key (buttons) or its href (links).
  function selectorOf(el) {
    if (el.dataset.key) return `[data-key="${CSS.escape(el.dataset.key)}"]`;
    const href = el.getAttribute("href");
    return href ? `a[href="${CSS.escape(href)}"]` : null;
  }
  async function tick() {
    try {
      const response = await fetch(live.dataset.src + location.search, {credentials: "same-origin"});
      if (response.ok) {
        const html = await response.text();
        if (html !== last) {
          const focused = live.contains(document.activeElement) ? selectorOf(document.activeElement) : null;
          live.innerHTML = html;
          last = html;
          if (focused) {
            const again = live.querySelector(focused);
            if (again) again.focus({preventScroll: true});
          }
          if (live.dataset.final === "0" && live.querySelector("[data-final]")) location.reload();
        }
      }
    } catch (err) { /* the server is restarting: try again next tick */ }
    setTimeout(tick, 1000);
  }
  setTimeout(tick, 1000);
})();

// Drag and drop: a file dropped anywhere on a dashed box goes into that box's file input.
(() => {
  "use strict";
  for (const box of document.querySelectorAll(".drop")) {
    const input = box.querySelector("input[type=file]");
    box.addEventListener("dragover", (ev) => { ev.preventDefault(); box.classList.add("over"); });
    box.addEventListener("dragleave", () => box.classList.remove("over"));
    box.addEventListener("drop", (ev) => {
      ev.preventDefault();
      box.classList.remove("over");
      if (input && ev.dataTransfer.files.length) input.files = ev.dataTransfer.files;
    });
  }
})();
