// The datasets page's upload with a progress bar (docs/ui.md): ask flowdeck for a pre-signed
// upload URL, PUT the file there showing its progress, then show the dataset in the list.
// Without this script the same form posts the file as multipart, and that works too.
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  if (!form || !window.XMLHttpRequest || !window.URLSearchParams) {
    return;
  }
  var bar = document.getElementById("upload-progress");
  var status = document.getElementById("upload-status");
  var button = document.getElementById("upload");

  function field(name) {
    return form.elements.namedItem(name);
  }

  function stop(message) {
    status.textContent = message;
    button.disabled = false;
  }

  // What went wrong, from a problem+json body or from the UI's error page.
  function problem(xhr) {
    var type = xhr.getResponseHeader("content-type") || "";
    try {
      if (type.indexOf("json") >= 0) {
        return JSON.parse(xhr.responseText).detail;
      }
      if (type.indexOf("text/html") === 0) {
        var alert = new DOMParser().parseFromString(xhr.responseText, "text/html").querySelector("[role=alert]");
        if (alert) {
          return alert.textContent.trim();
        }
      }
    } catch (ignored) {
      // fall through to the status
    }
    return "the upload failed (HTTP " + xhr.status + ")";
  }

  function put(target, file) {
    var xhr = new XMLHttpRequest();
    xhr.open(target.method, target.upload_url);
    xhr.upload.addEventListener("progress", function (event) {
      if (event.lengthComputable) {
        bar.max = event.total;
        bar.value = event.loaded;
        status.textContent = "Uploading " + file.name + ": " + Math.floor((100 * event.loaded) / event.total) + "%";
      }
    });
    xhr.addEventListener("load", function () {
      if (xhr.status >= 200 && xhr.status < 300) {
        bar.value = bar.max;
        status.textContent = "Uploaded " + file.name + ".";
        window.location.assign(target.done);
      } else {
        stop(problem(xhr));
      }
    });
    xhr.addEventListener("error", function () {
      stop("the upload failed: the storage did not answer");
    });
    // No Content-Type: the URL was signed without one.
    xhr.send(file.slice(0, file.size, ""));
  }

  form.addEventListener("submit", function (event) {
    var file = field("file").files[0];
    if (!file) {
      return; // the browser's own check of the required field speaks
    }
    event.preventDefault();
    var max = Number(form.getAttribute("data-max-bytes"));
    if (max && file.size > max) {
      stop("the file is larger than " + max + " bytes");
      return;
    }
    var fields = new URLSearchParams();
    fields.set("csrf", field("csrf").value);
    fields.set("name", field("name").value);
    fields.set("research_group", field("research_group").value);
    fields.set("filename", file.name);
    fields.set("size", String(file.size));
    button.disabled = true;
    bar.hidden = false;
    bar.value = 0;
    status.textContent = "Preparing the upload of " + file.name + "…";
    var ask = new XMLHttpRequest();
    ask.open("POST", form.getAttribute("data-upload-url"));
    ask.setRequestHeader("Content-Type", "application/x-www-form-urlencoded");
    ask.addEventListener("load", function () {
      var type = ask.getResponseHeader("content-type") || "";
      if (ask.status === 200 && type.indexOf("application/json") === 0) {
        put(JSON.parse(ask.responseText), file);
      } else {
        stop(problem(ask));
      }
    });
    ask.addEventListener("error", function () {
      stop("the upload failed: flowdeck did not answer");
    });
    ask.send(fields.toString());
  });
})();
