// kienco's board: live updates, countdowns, sign-out. Loaded as a file (the
// Content-Security-Policy forbids inline script); every page works without it.
//
// Live: the page's live part (#live) names its server-sent-event stream
// (data-stream). When the stream says sites changed, htmx fetches the part again
// (hx-get, hx-trigger "board:changed" on #live; it also polls every 30 s).
// EventSource reconnects by itself; the server tells it what it missed.
(function () {
  "use strict";

  function live() {
    return document.getElementById("live");
  }

  function connect() {
    var part = live();
    if (!part || !part.dataset.stream || !window.EventSource) {
      return;
    }
    var source = new EventSource(part.dataset.stream);
    source.addEventListener("changed", function () {
      var current = live();
      if (current && window.htmx) {
        window.htmx.trigger(current, "board:changed");
      }
    });
  }

  // "Starts in 1:23:45" / "Bắt đầu sau 1:23:45", ticking each second.
  var WORDS = {
    vi: { before: "Bắt đầu sau ", during: ["Đã bắt đầu ", " trước"], after: "Đã kết thúc" },
    en: { before: "Starts in ", during: ["Started ", " ago"], after: "Ended" },
  };

  function clock(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    var h = Math.floor(s / 3600);
    var m = Math.floor((s % 3600) / 60);
    var r = s % 60;
    return h + ":" + (m < 10 ? "0" : "") + m + ":" + (r < 10 ? "0" : "") + r;
  }

  function tick() {
    var words = WORDS[document.documentElement.lang] || WORDS.vi;
    var now = Date.now();
    document.querySelectorAll("time.countdown").forEach(function (el) {
      var starts = Date.parse(el.getAttribute("datetime"));
      var ends = Date.parse(el.dataset.ends);
      if (now < starts) {
        el.textContent = words.before + clock((starts - now) / 1000);
      } else if (now < ends) {
        el.textContent = words.during[0] + clock((now - starts) / 1000) + words.during[1];
      } else {
        el.textContent = words.after;
      }
    });
  }

  // POST /logout answers 204: go to the sign-in page once it has.
  function signOut(event) {
    var form = event.target;
    if (!form.matches("form[data-logout]")) {
      return;
    }
    event.preventDefault();
    fetch(form.action, { method: "POST", credentials: "same-origin" }).then(function () {
      window.location.assign("/login");
    });
  }

  document.addEventListener("submit", signOut);
  document.addEventListener("DOMContentLoaded", function () {
    connect();
    if (document.querySelector("time.countdown")) {
      tick();
      window.setInterval(tick, 1000);
    }
  });
})();
