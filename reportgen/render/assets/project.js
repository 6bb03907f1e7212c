/* reportgen project page: the citation block's copy button (offline, no library). */
(function () {
  "use strict";
  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(area);
    return ok;
  }
  function done(button, ok) {
    button.textContent = ok ? "Copied" : "Select and copy";
    button.setAttribute("data-copied", ok ? "yes" : "no");
    window.setTimeout(function () { button.textContent = button.getAttribute("data-label"); }, 2000);
  }
  Array.prototype.forEach.call(document.querySelectorAll("button[data-copy-target]"), function (button) {
    button.setAttribute("data-label", button.textContent);
    button.addEventListener("click", function () {
      var source = document.getElementById(button.getAttribute("data-copy-target"));
      if (!source) { return; }
      var text = source.textContent;
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(
          function () { done(button, true); },
          function () { done(button, fallbackCopy(text)); }
        );
      } else {
        done(button, fallbackCopy(text));
      }
    });
  });
})();
/* a featured heatmap ends with the token just before the explained one: show that end */
(function () {
  "use strict";
  Array.prototype.forEach.call(document.querySelectorAll(".heatmap-small"), function (box) {
    box.scrollTop = box.scrollHeight;
  });
})();
