// facedrop studio: refresh the live part of the page every second (changes show within 2 s).
// The fragment is swapped only when it changed; focus is put back on the same control.
(() => {
  "use strict";
  const live = document.getElementById("live");
  if (!live || !live.dataset.src) return;
  let last = live.innerHTML;
  async function tick() {
    try {
      const response = await fetch(live.dataset.src + location.search, {credentials: "same-origin"});
      if (response.ok) {
        const html = await response.text();
        if (html !== last) {
          const focused = live.contains(document.activeElement) ? document.activeElement.dataset.key : null;
          live.innerHTML = html;
          last = html;
          if (focused) {
            const again = live.querySelector(`[data-key="${CSS.escape(focused)}"]`);
            if (again) again.focus();
          }
          if (live.dataset.final === "0" && live.querySelector("[data-final]")) location.reload();
        }
      }
    } catch (err) { /* the server is restarting: try again next tick */ }
    setTimeout(tick, 1000);
  }
  setTimeout(tick, 1000);
})();
