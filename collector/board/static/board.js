// kienco's board: live updates, countdowns, sign-out. Loaded as a file (the
// Content-Security-Policy forbids inline script); every page works without it.
//
// Live: the page's live part (#live) names its server-sent-event stream
// (data-stream). When the stream says sites changed, htmx fetches the part again
// (hx-get, hx-trigger "board:changed" on #live; it also polls, every 30 s unless
// http.board_poll_s says otherwise). EventSource reconnects by itself; the server
// tells it what it missed.
//
// Lost contact: when a fetch of the live part fails (the server gone, the network
// cut, an error answer, or no answer within htmx's timeout), or the stream breaks
// and the fetch made at once to check fails, the page says since when (#lost, its
// text from the server in the page's language) and greys its live part (#live.stale):
// what it shows is the last it got, not the collector's word now. The first fetch
// that succeeds clears both. Bound: at once when the server refuses or drops the
// connection; within a poll interval and htmx's timeout when the network goes silent.
//
// Signed out: a fetch of the live part answered 401 means the page's session ended
// (signed out in another tab, unused too long, its token removed). The page says so
// in both languages with a link to sign in and come back (#signed-out), greys its
// live part the same way, hides who the header says is signed in, and closes its
// stream (it would only be refused again). It does not go to the login form by itself:
// a wall screen keeps the last it knew, plainly not live, and nobody loses a half-typed
// form. It keeps polling: signed in again in another tab, the next fetch succeeds and
// the page comes back as it was, stream and all.
(function () {
  "use strict";

  var REOPEN_MS = 5000; // a stream the browser gave up on (not an event stream): open again
  var lostSince = null; // Date.now() of the first failed fetch, null while in contact
  var signedOutSince = null; // Date.now() of the first fetch refused for want of a session
  var source = null; // the page's EventSource while it is open

  function live() {
    return document.getElementById("live");
  }

  function refetch() {
    var part = live();
    if (part && window.htmx) {
      window.htmx.trigger(part, "board:changed");
    }
  }

  function two(n) {
    return (n < 10 ? "0" : "") + n;
  }

  // HH:MM:SS in Vietnam time (UTC+7, no daylight saving), whatever the browser's zone.
  function vietnamTime(ms) {
    var d = new Date(ms + 7 * 3600 * 1000);
    return two(d.getUTCHours()) + ":" + two(d.getUTCMinutes()) + ":" + two(d.getUTCSeconds());
  }

  // The banner's text (data-text) with {at} as HH:MM:SS in Vietnam time.
  function fill(element, since) {
    element.textContent = (element.dataset.text || "").replace("{at}", vietnamTime(since));
  }

  function grey(stale) {
    var part = live();
    if (part) {
      part.classList.toggle("stale", stale);
    }
  }

  function lost() {
    if (lostSince !== null) {
      return;
    }
    lostSince = Date.now();
    var banner = document.getElementById("lost");
    if (banner) {
      fill(banner, lostSince);
      banner.hidden = false;
    }
    grey(true);
  }

  function signedOut() {
    if (signedOutSince !== null) {
      return;
    }
    signedOutSince = Date.now();
    clearLost(); // the collector answered: in contact, only not signed in
    var banner = document.getElementById("signed-out");
    if (banner) {
      banner.querySelectorAll("[data-text]").forEach(function (line) {
        fill(line, signedOutSince);
      });
      banner.hidden = false;
    }
    document.querySelectorAll("header [data-session]").forEach(function (shown) {
      shown.hidden = true;
    });
    grey(true);
    disconnect();
  }

  function clearLost() {
    lostSince = null;
    var banner = document.getElementById("lost");
    if (banner) {
      banner.hidden = true;
      banner.textContent = "";
    }
  }

  function found() {
    if (lostSince === null && signedOutSince === null) {
      return;
    }
    clearLost();
    if (signedOutSince !== null) {
      signedOutSince = null; // signed in again (another tab): as it was
      var banner = document.getElementById("signed-out");
      if (banner) {
        banner.hidden = true;
      }
      document.querySelectorAll("header [data-session]").forEach(function (shown) {
        shown.hidden = false;
      });
      connect();
    }
    grey(false);
  }

  function fromLive(event) {
    return event.target === live();
  }

  ["htmx:sendError", "htmx:timeout"].forEach(function (name) {
    document.addEventListener(name, function (event) {
      if (fromLive(event)) {
        lost();
      }
    });
  });
  document.addEventListener("htmx:responseError", function (event) {
    if (fromLive(event)) {
      if (event.detail.xhr && event.detail.xhr.status === 401) {
        signedOut();
      } else {
        lost();
      }
    }
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    if (fromLive(event) && event.detail.successful) {
      found();
    }
  });

  function connect() {
    var part = live();
    if (!part || !part.dataset.stream || !window.EventSource) {
      return;
    }
    if (source !== null || signedOutSince !== null) {
      return; // open already; or signed out, where it would be refused
    }
    var opened = new EventSource(part.dataset.stream);
    source = opened;
    opened.addEventListener("changed", refetch);
    opened.addEventListener("error", function () {
      // A stream also ends every few minutes by design, and when its session ends: a
      // fetch tells which it is.
      if (lostSince === null && signedOutSince === null) {
        refetch();
      }
      if (opened.readyState === EventSource.CLOSED && source === opened) {
        source = null;
        window.setTimeout(connect, REOPEN_MS);
      }
    });
    opened.addEventListener("open", function () {
      if (lostSince !== null) {
        refetch(); // the collector is back: the part as it is now, and the banner gone
      }
    });
  }

  function disconnect() {
    if (source !== null) {
      source.close();
      source = null;
    }
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
