// The compose form's and the vetting page's own behaviour (the pages' CSP allows no inline script):
// the sections that follow the chosen kind and schedule, the parts list, uploads, the audio preview,
// and filling the form from a CAP alert. The spoken-text preview and the target count are htmx attributes.
(function () {
  "use strict";

  function csrf() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf(), Accept: "application/json" },
    });
  }

  function failure(response) {
    return response.text().then(function (text) {
      try {
        return JSON.parse(text).error || text;
      } catch (e) {
        return text || String(response.status);
      }
    });
  }

  // -- sections shown for the chosen kind and schedule ------------------------------------------
  function follow(choice, attribute) {
    var picked = document.querySelector("input[" + choice + "]:checked");
    document.querySelectorAll("[" + attribute + "]").forEach(function (section) {
      section.hidden = picked ? section.getAttribute(attribute) !== picked.value : false;
    });
  }

  function partKind(row) {
    var select = row.querySelector("[data-part-kind]");
    row.querySelectorAll("[data-part-show]").forEach(function (box) {
      box.hidden = select && box.getAttribute("data-part-show") !== select.value;
    });
  }

  function emergencyButtons() {
    var picked = document.querySelector('input[name="priority"]:checked');
    document.querySelectorAll("[data-emergency-only]").forEach(function (button) {
      button.hidden = !picked || picked.value !== "emergency";
    });
  }

  // -- parts ------------------------------------------------------------------------------
  function addPart() {
    var list = document.getElementById("parts");
    var template = document.getElementById("part-template");
    if (!list || !template) return;
    var max = parseInt(list.getAttribute("data-max") || "20", 10);
    if (list.children.length >= max) return;
    var row = template.content.firstElementChild.cloneNode(true);
    list.appendChild(row);
    partKind(row);
    if (window.htmx) htmx.process(row);
  }

  // -- uploads: /console/uploads answers url, sha256, bytes, duration_s, filename -------------
  function upload(input) {
    var box = input.closest("[data-upload-box]");
    if (!box || !input.files.length) return;
    var field = function (name) {
      return box.querySelector('[data-field="' + name + '"]');
    };
    var status = field("status");
    var form = new FormData();
    form.append("file", input.files[0]);
    if (status) status.textContent = "…";
    post("/console/uploads", form)
      .then(function (response) {
        if (!response.ok) return failure(response).then(function (text) { throw new Error(text); });
        return response.json();
      })
      .then(function (got) {
        ["url", "sha256", "filename"].forEach(function (name) {
          if (field(name)) field(name).value = got[name] || "";
        });
        if (field("duration")) field("duration").value = got.duration_s != null ? String(got.duration_s) : "";
        if (status) {
          status.textContent = got.filename + (got.duration_s != null ? " · " + got.duration_s + " s" : "");
        }
        var player = field("player");
        if (player) {
          player.preload = "metadata"; // the editor sees its length and can listen to what was uploaded
          player.src = got.url;
          player.hidden = false;
        }
        box.setAttribute("data-uploaded", got.sha256);
      })
      .catch(function (error) {
        if (status) status.textContent = error.message;
        box.removeAttribute("data-uploaded");
      });
  }

  // -- the audio preview: a WAV from the server, played in the page's <audio> ------------------
  function listen(button) {
    var text = button.getAttribute("data-text");
    var source = button.getAttribute("data-source");
    if (source && document.querySelector(source)) text = document.querySelector(source).value;
    var player = document.querySelector(button.getAttribute("data-player"));
    var status = button.parentElement.querySelector("[data-audio-status]");
    var form = new FormData();
    form.append("text", text || "");
    button.disabled = true;
    if (status) status.textContent = button.getAttribute("data-busy") || "…";
    post("/console/preview/audio", form)
      .then(function (response) {
        if (!response.ok) return failure(response).then(function (text) { throw new Error(text); });
        var voice = response.headers.get("X-Loaxa-Voice") || "";
        return response.blob().then(function (blob) {
          return { blob: blob, voice: voice };
        });
      })
      .then(function (got) {
        if (player.src && player.src.indexOf("blob:") === 0) URL.revokeObjectURL(player.src);
        player.src = URL.createObjectURL(got.blob);
        player.hidden = false;
        if (status) status.textContent = got.voice;
        var played = player.play();
        if (played && played.catch) played.catch(function () {});
      })
      .catch(function (error) {
        if (status) status.textContent = error.message;
      })
      .then(function () {
        button.disabled = false;
      });
  }

  // -- a CAP 1.2 alert into the form ---------------------------------------------------------
  function localTime(iso, offsetMinutes) {
    var ms = Date.parse(iso);
    if (isNaN(ms)) return "";
    return new Date(ms + offsetMinutes * 60000).toISOString().slice(0, 16);
  }

  function setValue(form, name, value) {
    var input = form.querySelector('[name="' + name + '"]');
    if (input) input.value = value;
  }

  function choose(form, name, value) {
    var input = form.querySelector('input[name="' + name + '"][value="' + value + '"]');
    if (input) {
      input.checked = true;
      input.dispatchEvent(new Event("change", { bubbles: true }));
    }
  }

  function fill(got) {
    var form = document.getElementById("compose");
    var offset = parseInt(form.getAttribute("data-zone-offset") || "0", 10);
    setValue(form, "title", got.title || "");
    choose(form, "kind", "text");
    setValue(form, "text", got.text || "");
    choose(form, "priority", got.priority || "normal");
    setValue(form, "expires", got.expires ? localTime(got.expires, offset) : "");
    if (got.at) {
      choose(form, "when", "at");
      setValue(form, "at", localTime(got.at, offset));
    } else {
      choose(form, "when", "now");
    }
    var wanted = got.targets || [];
    form.querySelectorAll('input[name="target"]').forEach(function (box) {
      box.checked = wanted.indexOf(box.value) >= 0;
    });
    var targets = document.getElementById("targets");
    if (targets) targets.dispatchEvent(new Event("change", { bubbles: true }));
    var text = document.getElementById("text");
    if (text) text.dispatchEvent(new KeyboardEvent("keyup", { bubbles: true }));
  }

  function importCap(box) {
    var result = box.querySelector("[data-cap-result]");
    var file = box.querySelector("[data-cap-file]");
    var xml = box.querySelector("[data-cap-xml]");
    var form = new FormData();
    if (file && file.files.length) form.append("file", file.files[0]);
    else form.append("xml", xml ? xml.value : "");
    result.textContent = "…";
    post(box.getAttribute("data-url"), form)
      .then(function (response) {
        if (!response.ok) return failure(response).then(function (text) { throw new Error(text); });
        return response.json();
      })
      .then(function (got) {
        fill(got);
        result.textContent = "";
        var done = document.createElement("p");
        done.className = "done";
        done.textContent = box.getAttribute("data-filled");
        result.appendChild(done);
        var list = document.createElement("ul");
        (got.warnings || []).forEach(function (warning) {
          var item = document.createElement("li");
          item.className = "problem";
          item.textContent = warning;
          list.appendChild(item);
        });
        result.appendChild(list);
      })
      .catch(function (error) {
        result.textContent = box.getAttribute("data-failed") + ": " + error.message;
      });
  }

  // -- wiring ---------------------------------------------------------------------------------
  document.addEventListener("change", function (event) {
    var el = event.target;
    if (el.matches("[data-kind-choice]")) follow("data-kind-choice", "data-kind");
    if (el.matches("[data-when-choice]")) follow("data-when-choice", "data-when");
    if (el.matches('input[name="priority"]')) emergencyButtons();
    if (el.matches("[data-part-kind]")) partKind(el.closest(".part"));
    if (el.matches("[data-upload]")) upload(el);
  });

  document.addEventListener("click", function (event) {
    var el = event.target.closest("button");
    if (!el) return;
    if (el.matches("[data-add-part]")) addPart();
    else if (el.matches("[data-remove-part]")) el.closest(".part").remove();
    else if (el.matches("[data-audio-preview]")) listen(el);
    else if (el.matches("[data-cap-go]")) importCap(el.closest("[data-cap-import]"));
  });

  // A double click on approve sends one request (the server would send the draft once anyway, and answer
  // the second click with "sent already").
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches || !form.matches("form.approve, form.give-back")) return;
    if (form.getAttribute("data-sending")) {
      event.preventDefault();
      return;
    }
    form.setAttribute("data-sending", "1");
    var button = event.submitter || form.querySelector('button[type="submit"]');
    if (button) setTimeout(function () { button.disabled = true; }, 0);
  });

  // A part's text goes to the spoken preview as `text` (its own field is part_text, one per part).
  document.addEventListener("htmx:configRequest", function (event) {
    var el = event.detail.elt;
    if (el && el.matches && el.matches("[data-part-text]")) event.detail.parameters.text = el.value;
  });

  function start() {
    follow("data-kind-choice", "data-kind");
    follow("data-when-choice", "data-when");
    emergencyButtons();
    document.querySelectorAll(".part").forEach(partKind);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
