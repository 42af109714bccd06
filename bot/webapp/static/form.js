// Whistle Mini App: one form for a photo report (随手拍) or a post (我有话说).
// No framework, no build step. Every request carries the Telegram launch data
// (`Authorization: tma <initData>`); the draft lives on the server and is saved as the user types.
"use strict";

(() => {
  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

  // ---- messages: plain text, filled with {name} placeholders here, shown with textContent ----
  const STRINGS = JSON.parse($("#strings")?.textContent || "{}");
  const t = (id, params) => {
    const text = STRINGS[id] ?? id;
    if (!params) return text;
    return text.replace(/\{(\w+)\}/g, (all, key) => (key in params ? String(params[key]) : all));
  };

  // ---- Telegram ----
  const tg = window.Telegram?.WebApp;
  const initData =
    window.Telegram?.WebApp?.initData ||
    new URLSearchParams(location.hash.slice(1)).get("tgWebAppData") ||
    "";
  const API = document.body.dataset.api || "/app/api";

  const THEME = {
    bg_color: "--bg",
    text_color: "--text",
    button_color: "--button",
    button_text_color: "--button-text",
    hint_color: "--hint",
    secondary_bg_color: "--secondary-bg",
  };
  function applyTheme() {
    const params = tg?.themeParams || {};
    const root = document.documentElement;
    for (const [key, variable] of Object.entries(THEME)) {
      const value = params[key];
      if (typeof value === "string" && /^#[0-9a-f]{3,8}$/i.test(value)) {
        root.style.setProperty(variable, value);
      }
    }
    if (tg?.colorScheme) root.dataset.scheme = tg.colorScheme;
  }
  // Outside Telegram (or before it says), the system's choice of light or dark.
  const system = window.matchMedia?.("(prefers-color-scheme: dark)");
  const followSystem = () => {
    if (!tg?.colorScheme) document.documentElement.dataset.scheme = system?.matches ? "dark" : "light";
  };
  followSystem();
  system?.addEventListener?.("change", followSystem);
  if (tg) {
    try {
      tg.ready();
      tg.expand();
      applyTheme();
      tg.onEvent?.("themeChanged", applyTheme);
    } catch {
      // An old client without these: the page works without them.
    }
  }

  // ---- the API ----
  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  let locked = false; // 401: the launch data is missing, forged or expired

  async function api(method, path, { json, body, keepalive = false, blob = false } = {}) {
    const headers = { Authorization: `tma ${initData}` };
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    }
    let response;
    try {
      response = await fetch(API + path, {
        method,
        headers,
        body,
        keepalive,
        cache: "no-store",
        credentials: "same-origin",
      });
    } catch {
      throw new ApiError(0, t("webapp.error.network"));
    }
    if (!response.ok) {
      let message = "";
      try {
        message = (await response.json()).error || "";
      } catch {
        // not JSON (a proxy's error page): the generic message below
      }
      message = message || t("webapp.error.network");
      if (response.status === 401) lock(message);
      throw new ApiError(response.status, message);
    }
    if (blob) return response.blob();
    const text = await response.text(); // a DELETE may answer with no body at all
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch {
      return null;
    }
  }

  // ---- the error banner ----
  const banner = $("#error");
  let retry = null;

  function showError(message, onRetry = null) {
    $("#error-text").textContent = message;
    retry = onRetry;
    $("#error-retry").hidden = !onRetry;
    $("#error-dismiss").hidden = locked;
    banner.hidden = false;
    banner.scrollIntoView({ block: "nearest" });
  }
  function hideError() {
    if (locked) return;
    banner.hidden = true;
    retry = null;
  }
  $("#error-dismiss").addEventListener("click", hideError);
  $("#error-retry").addEventListener("click", () => {
    const again = retry;
    hideError();
    again?.();
  });

  function lock(message) {
    locked = true;
    clearTimeout(saveTimer);
    for (const id of ["#loading", "#form", "#review", "#done"]) $(id).hidden = true;
    showError(message);
  }

  // ---- state ----
  let setup = null; // GET /form
  let draft = null;
  let finished = false;
  let checked = false; // validation messages are live after the first "review" attempt
  const pending = []; // photos being uploaded: {url}
  const photoUrls = new Map(); // upload id -> blob: URL of its picture
  const TYPES = ["image/jpeg", "image/png", "image/webp"];

  function uuid() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  function newDraft() {
    return {
      submission: uuid(),
      kind: setup.kinds[0]?.code || "report",
      description: "",
      category: null,
      photos: [],
      latitude: null,
      longitude: null,
      address: "",
      anonymous: false,
      share_contact: false,
      contact: "",
    };
  }

  function fromServer(saved) {
    const fresh = newDraft();
    if (!saved || typeof saved !== "object") return fresh;
    const text = (value) => (typeof value === "string" ? value : "");
    const number = (value) => (typeof value === "number" && Number.isFinite(value) ? value : null);
    const kind = setup.kinds.some((k) => k.code === saved.kind) ? saved.kind : fresh.kind;
    const result = {
      submission: text(saved.submission) || fresh.submission,
      kind,
      description: text(saved.description),
      category: typeof saved.category === "string" ? saved.category : null,
      photos: Array.isArray(saved.photos) ? saved.photos.filter((p) => typeof p === "string") : [],
      latitude: number(saved.latitude),
      longitude: number(saved.longitude),
      address: text(saved.address),
      anonymous: saved.anonymous === true,
      share_contact: saved.share_contact === true,
      contact: text(saved.contact),
    };
    if (result.latitude === null || result.longitude === null) {
      result.latitude = result.longitude = null;
    }
    return result;
  }

  const length = (text) => [...text].length; // characters, as the server counts them

  // ---- saving the draft ----
  let saveTimer = null;
  let saving = false;
  let dirty = false;

  function changed() {
    if (locked || finished || !draft) return;
    dirty = true;
    clearTimeout(saveTimer);
    saveTimer = setTimeout(saveDraft, 600);
    if (checked) showChecks(problems());
  }

  async function saveDraft({ keepalive = false } = {}) {
    clearTimeout(saveTimer);
    saveTimer = null;
    if (locked || finished || submitting || !draft || !dirty) return;
    if (saving && !keepalive) {
      saveTimer = setTimeout(saveDraft, 600); // one request at a time, the newest state wins
      return;
    }
    saving = true;
    dirty = false;
    const status = $("#draft-status");
    try {
      await api("PUT", "/draft", { json: draft, keepalive });
      status.textContent = t("webapp.draft.saved");
    } catch (error) {
      if (finished) return;
      dirty = true;
      if (error.status !== 401) status.textContent = t("webapp.draft.failed");
    } finally {
      saving = false;
    }
  }

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") saveDraft({ keepalive: true });
  });
  window.addEventListener("pagehide", () => saveDraft({ keepalive: true }));

  // ---- kind ----
  function renderKinds() {
    const box = $("#kinds");
    box.replaceChildren(
      ...setup.kinds.map((kind) => {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "chip kind-chip";
        button.id = `kind-${kind.code}`;
        button.dataset.code = kind.code;
        button.textContent = kind.name;
        button.addEventListener("click", () => chooseKind(kind.code));
        return button;
      }),
    );
  }

  function chooseKind(code) {
    if (draft.kind === code) return;
    draft.kind = code;
    const category = setup.categories.find((c) => c.code === draft.category);
    if (category && category.kind !== code) draft.category = null;
    applyKind();
    changed();
  }

  function applyKind() {
    for (const button of $$("#kinds .chip")) {
      button.setAttribute("aria-pressed", String(button.dataset.code === draft.kind));
    }
    for (const element of $$("[data-only]")) element.hidden = element.dataset.only !== draft.kind;
    renderCategories();
  }

  // ---- photos ----
  const photoLimit = () => setup.limits.photos;

  function renderPhotos() {
    const list = $("#thumbs");
    const items = draft.photos.map((id, index) => {
      const item = document.createElement("li");
      item.className = "thumb";
      item.dataset.id = id;
      const img = document.createElement("img");
      img.alt = t("webapp.photos.alt", { n: index + 1 });
      const url = photoUrls.get(id);
      if (url) img.src = url;
      else loadPhoto(id);
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "remove";
      remove.setAttribute("aria-label", t("webapp.photos.remove"));
      remove.title = t("webapp.photos.remove");
      remove.textContent = "×";
      remove.addEventListener("click", () => removePhoto(id, remove));
      item.append(img, remove);
      return item;
    });
    for (const upload of pending) {
      const item = document.createElement("li");
      item.className = "thumb-pending";
      const img = document.createElement("img");
      img.alt = "";
      img.src = upload.url;
      const label = document.createElement("span");
      label.textContent = t("webapp.photos.uploading");
      item.append(img, label);
      items.push(item);
    }
    list.replaceChildren(...items);
    const count = draft.photos.length + pending.length;
    $("#photo-count").textContent = `${draft.photos.length} / ${photoLimit()}`;
    const full = count >= photoLimit();
    $("#photo-take").disabled = full;
    $("#photo-choose").disabled = full;
    renderSummaryPhotos();
  }

  const loading = new Set();
  async function loadPhoto(id) {
    if (loading.has(id)) return;
    loading.add(id);
    try {
      const picture = await api("GET", `/photos/${encodeURIComponent(id)}`, { blob: true });
      photoUrls.set(id, URL.createObjectURL(picture));
      if (draft?.photos.includes(id)) renderPhotos();
    } catch (error) {
      if (error.status === 404 && draft?.photos.includes(id)) {
        // The upload is gone (expired): it cannot be part of the case.
        draft.photos = draft.photos.filter((p) => p !== id);
        renderPhotos();
        changed();
      }
    } finally {
      loading.delete(id);
    }
  }

  function notice(element, lines) {
    element.textContent = lines.join("\n");
    element.hidden = lines.length === 0;
  }

  function acceptable(file) {
    if (TYPES.includes(file.type)) return true;
    // Some pickers give no type: judge by the name then; the server checks the bytes.
    return !file.type && /\.(jpe?g|png|webp)$/i.test(file.name || "");
  }

  let uploads = Promise.resolve();
  function addFiles(files) {
    const lines = [];
    const megabytes = Math.floor((setup.limits.photo_bytes / 1048576) * 10) / 10;
    let tooMany = false;
    for (const file of files) {
      const name = file.name || t("webapp.photos.alt", { n: "" }).trim();
      if (!acceptable(file)) {
        lines.push(t("webapp.photos.wrong-type", { name }));
      } else if (file.size > setup.limits.photo_bytes) {
        lines.push(t("webapp.photos.too-big", { name, mb: megabytes }));
      } else if (draft.photos.length + pending.length >= photoLimit()) {
        tooMany = true;
      } else {
        const upload = { file, url: URL.createObjectURL(file) };
        pending.push(upload);
        uploads = uploads.then(() => send(upload)); // one at a time, in the order chosen
      }
    }
    if (tooMany) lines.push(t("webapp.photos.too-many", { limit: photoLimit() }));
    notice($("#photos-notice"), lines);
    renderPhotos();
  }

  async function send(upload) {
    const body = new FormData();
    body.append("photo", upload.file, upload.file.name || "photo");
    try {
      const { id } = await api("POST", "/photos", { body });
      if (locked || finished || !draft) return;
      photoUrls.set(id, upload.url);
      draft.photos.push(id);
      changed();
    } catch (error) {
      URL.revokeObjectURL(upload.url);
      if (error.status !== 401) {
        const box = $("#photos-notice");
        notice(box, [...(box.hidden ? [] : [box.textContent]), error.message]);
      }
    } finally {
      pending.splice(pending.indexOf(upload), 1);
      if (draft) renderPhotos();
    }
  }

  async function removePhoto(id, button) {
    button.disabled = true;
    try {
      await api("DELETE", `/photos/${encodeURIComponent(id)}`);
    } catch (error) {
      if (error.status !== 404) {
        button.disabled = false;
        if (error.status !== 401) showError(error.message);
        return;
      }
    }
    const index = draft.photos.indexOf(id);
    draft.photos = draft.photos.filter((p) => p !== id);
    const url = photoUrls.get(id);
    if (url) URL.revokeObjectURL(url);
    photoUrls.delete(id);
    renderPhotos();
    changed();
    const removes = $$("#thumbs .remove");
    (removes[Math.min(index, removes.length - 1)] || $("#photo-choose")).focus();
  }

  for (const [button, input] of [
    ["#photo-take", "#photo-input-camera"],
    ["#photo-choose", "#photo-input-gallery"],
  ]) {
    $(button).addEventListener("click", () => $(input).click());
    $(input).addEventListener("change", (event) => {
      const files = [...event.target.files];
      event.target.value = "";
      if (files.length) addFiles(files);
    });
  }

  // ---- description ----
  const description = $("#description");
  function renderCount() {
    const n = length(description.value);
    const limit = setup.limits.description;
    const count = $("#description-count");
    count.textContent = `${n} / ${limit}`;
    count.classList.toggle("over", n > limit);
  }
  description.addEventListener("input", () => {
    draft.description = description.value;
    renderCount();
    changed();
  });

  // ---- category ----
  function renderCategories() {
    const box = $("#categories");
    const shown = setup.categories.filter((c) => c.kind === draft.kind);
    box.replaceChildren(
      ...shown.map((category) => {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "chip category-chip";
        button.dataset.code = category.code;
        button.textContent = category.name;
        button.setAttribute("aria-pressed", String(category.code === draft.category));
        button.addEventListener("click", () => {
          draft.category = draft.category === category.code ? null : category.code;
          for (const chip of $$(".category-chip", box)) {
            chip.setAttribute("aria-pressed", String(chip.dataset.code === draft.category));
          }
          changed();
        });
        return button;
      }),
    );
    $("#sec-category").hidden = shown.length === 0;
  }

  // ---- place: my location, the district map, an address ----
  const SVG = "http://www.w3.org/2000/svg";
  let map = null; // {svg, marker, project, unproject, bounds, size}

  function svgElement(name, attributes = {}) {
    const element = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
    return element;
  }

  function buildMap(outline) {
    const corners = (outline || []).filter(
      (p) => Array.isArray(p) && Number.isFinite(p[0]) && Number.isFinite(p[1]),
    );
    if (corners.length < 3) return;
    const lats = corners.map((p) => p[0]);
    const lons = corners.map((p) => p[1]);
    const bounds = {
      south: Math.min(...lats),
      north: Math.max(...lats),
      west: Math.min(...lons),
      east: Math.max(...lons),
    };
    // Equirectangular: x east, y south (latitude up), a degree of longitude shortened by the
    // cosine of the middle latitude; scaled so the longer side is 1000 units.
    const shrink = Math.cos((((bounds.north + bounds.south) / 2) * Math.PI) / 180);
    const width0 = Math.max((bounds.east - bounds.west) * shrink, 1e-9);
    const height0 = Math.max(bounds.north - bounds.south, 1e-9);
    const scale = 1000 / Math.max(width0, height0);
    const width = width0 * scale;
    const height = height0 * scale;
    const project = (lat, lon) => [(lon - bounds.west) * shrink * scale, (bounds.north - lat) * scale];
    const unproject = (x, y) => [bounds.north - y / scale, bounds.west + x / (shrink * scale)];
    const pad = 40;

    const svg = svgElement("svg", {
      viewBox: `${-pad} ${-pad} ${width + 2 * pad} ${height + 2 * pad}`,
      role: "img",
      tabindex: "0",
      "aria-label": $("#map").dataset.label || "",
      preserveAspectRatio: "xMidYMid meet",
    });
    svg.append(
      svgElement("rect", {
        class: "map-bg",
        x: -pad,
        y: -pad,
        width: width + 2 * pad,
        height: height + 2 * pad,
      }),
    );
    // A light grid every tenth of the span, for a sense of scale.
    const grid = svgElement("g", { class: "map-grid" });
    for (let i = 1; i < 10; i++) {
      grid.append(svgElement("line", { x1: (width * i) / 10, y1: 0, x2: (width * i) / 10, y2: height }));
      grid.append(svgElement("line", { x1: 0, y1: (height * i) / 10, x2: width, y2: (height * i) / 10 }));
    }
    svg.append(grid);
    const points = corners.map(([lat, lon]) => project(lat, lon).map((v) => v.toFixed(1)).join(","));
    svg.append(svgElement("polygon", { class: "map-outline", points: points.join(" ") }));

    const size = Math.max(width, height) / 22;
    const marker = svgElement("g", { id: "marker", class: "marker", display: "none" });
    marker.append(
      svgElement("path", {
        d: `M0 0 C ${-size * 0.35} ${-size * 0.9} ${-size} ${-size * 1.3} ${-size} ${-size * 2}` +
          ` A ${size} ${size} 0 1 1 ${size} ${-size * 2}` +
          ` C ${size} ${-size * 1.3} ${size * 0.35} ${-size * 0.9} 0 0 Z`,
      }),
      svgElement("circle", { cx: 0, cy: -size * 2, r: size * 0.4, class: "marker-dot" }),
    );
    svg.append(marker);

    const place = (x, y) => {
      const [lat, lon] = unproject(Math.min(Math.max(x, 0), width), Math.min(Math.max(y, 0), height));
      setPoint(
        Math.min(Math.max(lat, bounds.south), bounds.north),
        Math.min(Math.max(lon, bounds.west), bounds.east),
      );
    };
    svg.addEventListener("click", (event) => {
      const matrix = svg.getScreenCTM();
      if (!matrix) return;
      const at = new DOMPoint(event.clientX, event.clientY).matrixTransform(matrix.inverse());
      place(at.x, at.y);
    });
    // Keyboard: Enter or space marks the middle, the arrows move the mark.
    svg.addEventListener("keydown", (event) => {
      const step = Math.max(width, height) / 50;
      const moves = {
        ArrowLeft: [-step, 0],
        ArrowRight: [step, 0],
        ArrowUp: [0, -step],
        ArrowDown: [0, step],
      };
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        if (draft.latitude === null) place(width / 2, height / 2);
      } else if (moves[event.key]) {
        event.preventDefault();
        const [x, y] =
          draft.latitude === null ? [width / 2, height / 2] : project(draft.latitude, draft.longitude);
        place(x + moves[event.key][0], y + moves[event.key][1]);
      }
    });

    $("#map").replaceChildren(svg);
    $("#map-block").hidden = false;
    map = { marker, project, bounds };
  }

  function setPoint(lat, lon) {
    draft.latitude = Math.round(lat * 1e6) / 1e6;
    draft.longitude = Math.round(lon * 1e6) / 1e6;
    notice($("#locate-status"), []);
    renderPoint();
    changed();
  }

  function renderPoint() {
    const has = draft.latitude !== null && draft.longitude !== null;
    $("#point").hidden = !has;
    $("#point-text").textContent = has
      ? t("webapp.place.marked", { lat: draft.latitude.toFixed(5), lon: draft.longitude.toFixed(5) })
      : "";
    if (!map) return;
    const { bounds } = map;
    const inside =
      has &&
      draft.latitude >= bounds.south &&
      draft.latitude <= bounds.north &&
      draft.longitude >= bounds.west &&
      draft.longitude <= bounds.east;
    if (inside) {
      const [x, y] = map.project(draft.latitude, draft.longitude);
      map.marker.setAttribute("transform", `translate(${x.toFixed(1)} ${y.toFixed(1)})`);
    }
    map.marker.setAttribute("display", inside ? "inline" : "none");
  }

  $("#place-clear").addEventListener("click", () => {
    draft.latitude = draft.longitude = null;
    renderPoint();
    changed();
    $("#locate").focus();
  });

  $("#locate").addEventListener("click", () => {
    const status = $("#locate-status");
    if (!navigator.geolocation) {
      notice(status, [t("webapp.place.failed")]);
      return;
    }
    const button = $("#locate");
    button.disabled = true;
    notice(status, [t("webapp.place.locating")]);
    navigator.geolocation.getCurrentPosition(
      (position) => {
        button.disabled = false;
        if (!draft || finished) return;
        setPoint(position.coords.latitude, position.coords.longitude);
      },
      (error) => {
        button.disabled = false;
        notice(status, [t(error.code === 1 ? "webapp.place.denied" : "webapp.place.failed")]);
      },
      { enableHighAccuracy: true, timeout: 20000, maximumAge: 60000 },
    );
  });

  const address = $("#address");
  address.addEventListener("input", () => {
    draft.address = address.value;
    changed();
  });

  // ---- anonymity and contact ----
  const anonymous = $("#anonymous");
  const share = $("#share-contact");
  const contact = $("#contact");
  anonymous.addEventListener("change", () => {
    draft.anonymous = anonymous.checked;
    changed();
  });
  share.addEventListener("change", () => {
    draft.share_contact = share.checked;
    $("#contact-field").hidden = !share.checked;
    share.setAttribute("aria-expanded", String(share.checked));
    if (share.checked) contact.focus();
    changed();
  });
  contact.addEventListener("input", () => {
    draft.contact = contact.value;
    changed();
  });

  // ---- the whole form from the draft ----
  function fill() {
    renderKinds();
    applyKind();
    description.value = draft.description;
    description.maxLength = setup.limits.description;
    renderCount();
    address.value = draft.address;
    address.maxLength = setup.limits.address;
    anonymous.checked = draft.anonymous;
    share.checked = draft.share_contact;
    share.setAttribute("aria-expanded", String(draft.share_contact));
    $("#contact-field").hidden = !draft.share_contact;
    contact.value = draft.contact;
    contact.maxLength = setup.limits.contact;
    $("#photos-hint").textContent = t("webapp.photos.hint", { limit: photoLimit() });
    notice($("#photos-notice"), []);
    notice($("#locate-status"), []);
    renderPhotos();
    renderPoint();
    showChecks(new Set());
  }

  // ---- checking ----
  function problems() {
    const found = new Set();
    const report = draft.kind === "report";
    if (report && draft.photos.length === 0 && pending.length === 0) found.add("photos");
    if (report && pending.length) found.add("uploading");
    const text = draft.description.trim();
    if (!text) found.add("description");
    else if (length(text) > setup.limits.description) found.add("description-long");
    const shown = setup.categories.filter((c) => c.kind === draft.kind);
    if (report && shown.length && !draft.category) found.add("category");
    if (report && draft.latitude === null && !draft.address.trim()) found.add("place");
    if (draft.share_contact && !draft.contact.trim()) found.add("contact");
    return found;
  }

  const FOCUS = {
    photos: "#photo-take",
    uploading: "#photo-take",
    description: "#description",
    "description-long": "#description",
    category: "#categories .category-chip",
    place: "#address",
    contact: "#contact",
  };

  function showChecks(found) {
    const long = $('[data-check="description-long"]');
    long.textContent = t("webapp.check.too-long", { limit: setup.limits.description });
    for (const element of $$("[data-check]")) {
      const name = element.dataset.check;
      element.hidden = name === "some" ? found.size === 0 : !found.has(name);
    }
    for (const [name, selector] of Object.entries(FOCUS)) {
      const control = $(selector);
      if (!control) continue;
      if (found.has(name)) {
        control.setAttribute("aria-invalid", "true");
      } else if (![...found].some((other) => FOCUS[other] === selector)) {
        control.removeAttribute("aria-invalid");
      }
    }
  }

  // ---- review and submit ----
  const form = $("#form");
  const review = $("#review");
  const done = $("#done");

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    openReview();
  });

  function openReview() {
    hideError();
    checked = true;
    const found = problems();
    showChecks(found);
    if (found.size) {
      const first = Object.keys(FOCUS).find((name) => found.has(name));
      const control = $(FOCUS[first]) || $(".invalid:not([hidden])");
      control?.closest("section")?.scrollIntoView({ block: "start", behavior: "smooth" });
      control?.focus({ preventScroll: true });
      return;
    }
    saveDraft();
    renderSummary();
    form.hidden = true;
    review.hidden = false;
    window.scrollTo(0, 0);
    $("#h-review").focus();
  }

  function renderSummaryPhotos() {
    const list = $("#sum-photos");
    list.replaceChildren(
      ...draft.photos.map((id, index) => {
        const item = document.createElement("li");
        item.className = "summary-thumb";
        const img = document.createElement("img");
        img.alt = t("webapp.photos.alt", { n: index + 1 });
        const url = photoUrls.get(id);
        if (url) img.src = url;
        item.append(img);
        return item;
      }),
    );
  }

  function lines(element, texts) {
    element.replaceChildren();
    texts.forEach((text, index) => {
      if (index) element.append(document.createElement("br"));
      element.append(document.createTextNode(text));
    });
  }

  function renderSummary() {
    $("#sum-kind").textContent = setup.kinds.find((k) => k.code === draft.kind)?.name || draft.kind;
    renderSummaryPhotos();
    $("#sum-description").textContent = draft.description.trim();
    const category = setup.categories.find((c) => c.code === draft.category);
    $("#sum-category").textContent = category ? category.name : t("webapp.summary.none");
    const place = [];
    if (draft.address.trim()) place.push(draft.address.trim());
    if (draft.latitude !== null) {
      place.push(`📍 ${draft.latitude.toFixed(5)}, ${draft.longitude.toFixed(5)}`);
    }
    lines($("#sum-place"), place.length ? place : [t("webapp.summary.no-place")]);
    $("#sum-name").textContent =
      draft.anonymous || !setup.name
        ? t("webapp.summary.anonymous")
        : t("webapp.summary.named", { name: setup.name });
    $("#sum-contact").textContent = draft.share_contact
      ? t("webapp.summary.contact", { contact: draft.contact.trim() })
      : t("webapp.summary.no-contact");
  }

  $("#edit").addEventListener("click", () => {
    review.hidden = true;
    form.hidden = false;
    window.scrollTo(0, 0);
    $("#to-review").scrollIntoView({ block: "center" });
    $("#to-review").focus({ preventScroll: true });
  });

  function payload() {
    const report = draft.kind === "report";
    return {
      ...draft,
      description: draft.description.trim(),
      address: draft.address.trim(),
      contact: draft.share_contact ? draft.contact.trim() : "",
      photos: report ? [...draft.photos] : [],
    };
  }

  let submitting = false;
  const submitButton = $("#submit");
  const submitLabel = submitButton.textContent;

  submitButton.addEventListener("click", async () => {
    if (submitting || locked) return;
    submitting = true;
    clearTimeout(saveTimer);
    submitButton.disabled = true;
    $("#edit").disabled = true;
    submitButton.textContent = t("webapp.review.sending");
    hideError();
    try {
      const result = await api("POST", "/submit", { json: payload() });
      finish(result.number);
    } catch (error) {
      if (error.status !== 401) showError(error.message);
    } finally {
      submitting = false;
      submitButton.disabled = false;
      $("#edit").disabled = false;
      submitButton.textContent = submitLabel;
    }
  });

  function finish(number) {
    finished = true;
    dirty = false;
    clearTimeout(saveTimer);
    draft = null; // the server has cleared its copy
    for (const url of photoUrls.values()) URL.revokeObjectURL(url);
    photoUrls.clear();
    checked = false;
    $("#draft-status").textContent = "";
    $("#case-number").textContent = number;
    review.hidden = true;
    form.hidden = true;
    done.hidden = false;
    $("#close").hidden = !tg;
    window.scrollTo(0, 0);
    $("#h-done").focus();
    try {
      tg?.HapticFeedback?.notificationOccurred("success");
    } catch {
      // not in every client
    }
  }

  $("#close").addEventListener("click", () => tg?.close());
  $("#again").addEventListener("click", () => {
    finished = false;
    draft = newDraft();
    fill();
    done.hidden = true;
    form.hidden = false;
    window.scrollTo(0, 0);
    $(`#kind-${draft.kind}`)?.focus();
  });

  // ---- start ----
  async function start() {
    $("#loading").hidden = false;
    try {
      setup = await api("GET", "/form");
    } catch (error) {
      $("#loading").hidden = true;
      if (error.status !== 401) showError(error.message, start);
      return;
    }
    setup.kinds = setup.kinds || [];
    setup.categories = setup.categories || [];
    draft = fromServer(setup.draft);
    buildMap(setup.outline);
    fill();
    $("#loading").hidden = true;
    form.hidden = false;
  }

  start();
})();
