// clerk's pages: forms that ask before they act, and parts of a page
// that keep themselves current. No framework; runs under the pages'
// Content-Security-Policy (no inline script).
"use strict";

// A form with data-confirm asks first.
document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// An element with data-live="N" is fetched again every N seconds, from
// the page's own address, and swapped in, while the page is visible and
// nobody is typing in it.
function keepCurrent(element) {
  const seconds = Math.max(2, parseInt(element.getAttribute("data-live"), 10) || 10);
  const refresh = async () => {
    if (document.hidden || element.contains(document.activeElement)) {
      return;
    }
    try {
      const response = await fetch(window.location.href, {
        credentials: "same-origin",
        headers: { "Accept": "text/html" },
      });
      if (!response.ok) {
        return;
      }
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = page.getElementById(element.id);
      if (fresh) {
        element.replaceChildren(...fresh.childNodes);
        element.setAttribute("data-updated", String(Date.now()));
      }
    } catch (_) {
      // The server is away for a moment; try again on the next tick.
    }
  };
  window.setInterval(refresh, seconds * 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-live]").forEach(keepCurrent);
});
