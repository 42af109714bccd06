// The playground page: stands in for the Telegram clients of everyone in the district.
"use strict";

const $ = (id) => document.getElementById(id);
let state = null;          // /api/state
let view = null;           // the chat view shown
const memberOf = {};       // view key -> chosen member id
const unread = {};         // view key -> count
let replyTo = null;        // {id, text}
let clockBase = null;      // {virtual: ms, real: ms, speed}
let loading = null;
let lang = new URLSearchParams(location.search).get("lang") || document.documentElement.lang;

function s(key) { return (state && state.strings[key]) || key; }

async function api(path, body) {
  const options = body instanceof FormData
    ? { method: "POST", body }
    : body !== undefined
      ? { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) }
      : {};
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({}));
  if (!response.ok || data.ok === false) toast(data.error || response.statusText);
  return data;
}

// One way to write a moment on the page (the clock, the toasts), in the district's zone.
function moment(ms) {
  return new Intl.DateTimeFormat(lang, {
    timeZone: state.timezone, dateStyle: "medium", timeStyle: "medium",
  }).format(new Date(ms));
}

function forgetUnread() {
  for (const key of Object.keys(unread)) delete unread[key];
}

function toast(text) {
  const box = $("toast");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, 4000);
}

// -- state and chats -------------------------------------------------------------------------
async function loadState() {
  state = await api(`/api/state?lang=${encodeURIComponent(lang)}`);
  document.title = s("title");
  $("title").textContent = `${s("title")} · ${state.district}`;
  $("intro").textContent = s("intro");
  $("real-bot").textContent = s("real-bot");
  $("acting-label").textContent = s("acting-as");
  $("text").placeholder = s("placeholder");
  $("send").textContent = s("send");
  $("photo-text").textContent = "🖼 " + s("photo");
  $("location-open").textContent = "📍 " + s("location");
  $("location-send").textContent = s("location.send");
  $("location-cancel").textContent = s("cancel");
  $("location-hint").textContent = s("location.hint");
  $("clock-label").textContent = s("clock");
  $("jump").textContent = "⏭ " + s("clock.jump");
  $("reset").textContent = "↺ " + s("reset");
  const select = $("lang");
  select.replaceChildren(...state.languages.map((code) => new Option(code, code, false, code === state.lang)));
  setClock(state.clock);
  renderChats();
  const keep = view && state.chats.find((c) => c.key === view.key);
  selectChat(keep || state.chats[0]);
}

function chatIdOf(chat) {
  return chat.private ? memberOf[chat.key] : chat.chat_id;
}

function renderChats() {
  const nav = $("chats");
  nav.replaceChildren();
  for (const chat of state.chats) {
    if (memberOf[chat.key] === undefined || !chat.members.some((m) => m.id === memberOf[chat.key])) {
      memberOf[chat.key] = chat.members.length ? chat.members[0].id : null;
    }
    const button = document.createElement("button");
    button.type = "button";
    button.className = "chat-tab" + (view && view.key === chat.key ? " active" : "");
    button.dataset.key = chat.key;
    button.dataset.kind = chat.kind;
    if (chat.chat_id) button.dataset.chatId = chat.chat_id;
    const title = document.createElement("span");
    title.textContent = chat.title;
    button.append(title);
    if (unread[chat.key]) {
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = unread[chat.key];
      button.append(badge);
    }
    button.addEventListener("click", () => selectChat(chat));
    nav.append(button);
  }
}

function selectChat(chat) {
  view = chat;
  unread[chat.key] = 0;
  $("chat-title").textContent = chat.title;
  const member = $("member");
  member.replaceChildren(...chat.members.map((m) => new Option(m.name, m.id, false, m.id === memberOf[chat.key])));
  clearReply();
  renderChats();
  loadHistory();
}

// -- messages --------------------------------------------------------------------------------
async function loadHistory() {
  if (!view) return;
  const chatId = chatIdOf(view);
  if (!chatId) return;
  const asked = chatId;
  const data = await api(`/api/history?chat_id=${chatId}`);
  if (!view || chatIdOf(view) !== asked) return;
  renderMessages(data.messages || []);
  renderMenuButton(data.menu_button);
}

// The chat's menu button (setChatMenuButton): a web_app one opens the Mini App.
function renderMenuButton(button) {
  const open = $("menu-app");
  const app = button && button.type === "web_app" ? button : null;
  open.hidden = !app;
  if (!app) return;
  open.textContent = app.text;
  open.onclick = () => openWebApp(app.web_app.url, app.text);
}

// What Telegram's client does for a web_app button: the app opens beside the chat with launch
// data signed for the person (here by the playground's own bot token).
async function openWebApp(url, title) {
  const data = await api("/api/webapp", { user_id: memberOf[view.key], url });
  if (!data.url) return;
  $("webapp-title").textContent = title;
  $("webapp-frame").title = title;
  $("webapp-frame").src = data.url;
  $("webapp").hidden = false;
}

function scheduleHistory() {
  if (loading) return;
  loading = setTimeout(() => { loading = null; loadHistory(); }, 60);
}

function renderMessages(messages) {
  const box = $("messages");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  box.replaceChildren();
  if (!messages.length) {
    const empty = document.createElement("p");
    empty.className = "empty";
    empty.textContent = s("empty");
    box.append(empty);
  }
  let keyboard = null;
  const me = memberOf[view.key];
  for (const message of messages) {
    box.append(renderMessage(message, me));
    const markup = message.client_keyboard;
    if (markup) {
      if (markup.keyboard) keyboard = markup.keyboard;
      else if (markup.remove_keyboard) keyboard = null;
    }
  }
  renderKeyboard(keyboard);
  if (atBottom || box.dataset.chat !== String(chatIdOf(view))) box.scrollTop = box.scrollHeight;
  box.dataset.chat = String(chatIdOf(view));
}

function renderMessage(message, me) {
  const from = message.from || {};
  const item = document.createElement("article");
  item.className = "msg " + (from.is_bot ? "bot" : from.id === me ? "mine" : "user");
  item.dataset.messageId = message.message_id;
  const head = document.createElement("header");
  head.textContent = from.first_name || "";
  item.append(head);
  if (message.reply_to_message) {
    const quote = document.createElement("blockquote");
    quote.className = "quote";
    const quoted = message.reply_to_message;
    quote.textContent = `${(quoted.from || {}).first_name || ""}: ${(quoted.text || quoted.caption || (quoted.photo ? "📷" : "")).slice(0, 80)}`;
    item.append(quote);
  }
  if (message.photo) {
    const sizes = message.photo;
    const img = document.createElement("img");
    img.src = `/api/file?file_id=${encodeURIComponent(sizes[sizes.length - 1].file_id)}`;
    img.alt = "📷";
    item.append(img);
  }
  if (message.document) {
    const link = document.createElement("a");
    link.href = `/api/file?file_id=${encodeURIComponent(message.document.file_id)}`;
    link.textContent = "📎 " + (message.document.file_name || "file");
    link.download = message.document.file_name || "file";
    item.append(link);
  }
  if (message.location) {
    const place = document.createElement("p");
    place.className = "location";
    place.textContent = `📍 ${message.location.latitude.toFixed(5)}, ${message.location.longitude.toFixed(5)}`;
    item.append(place);
  }
  const text = message.text !== undefined ? message.text : message.caption;
  if (text) {
    const body = document.createElement("div");
    body.className = "text";
    body.append(formatted(text, message.text !== undefined ? message.entities : message.caption_entities));
    item.append(body);
  }
  const markup = message.reply_markup;
  if (markup && markup.inline_keyboard) {
    const rows = document.createElement("div");
    rows.className = "inline";
    for (const row of markup.inline_keyboard) {
      const line = document.createElement("div");
      for (const button of row) line.append(inlineButton(message, button));
      rows.append(line);
    }
    item.append(rows);
  }
  const foot = document.createElement("footer");
  const when = document.createElement("time");
  when.textContent = new Date(message.date * 1000).toLocaleTimeString(lang, { timeZone: state.timezone });
  foot.append(when);
  if (message.edit_date) foot.append(" · " + s("edited"));
  const reply = document.createElement("button");
  reply.type = "button";
  reply.className = "reply";
  reply.textContent = "↩ " + s("reply");
  reply.addEventListener("click", () => setReply(message, text));
  foot.append(reply);
  item.append(foot);
  return item;
}

function inlineButton(message, button) {
  if (button.url) {
    const link = document.createElement("a");
    link.className = "button";
    link.href = button.url;
    link.target = "_blank";
    link.rel = "noopener";
    link.textContent = button.text;
    return link;
  }
  const element = document.createElement("button");
  element.type = "button";
  element.textContent = button.text;
  element.addEventListener("click", () => api("/api/press", {
    user_id: memberOf[view.key], chat_id: chatIdOf(view), message_id: message.message_id, data: button.callback_data,
  }));
  return element;
}

const TAGS = { bold: "b", italic: "i", underline: "u", strikethrough: "s", code: "code", pre: "pre", spoiler: "span", blockquote: "blockquote", expandable_blockquote: "blockquote" };

function formatted(text, entities) {
  // Entities count UTF-16 code units, as JavaScript strings do.
  const root = document.createDocumentFragment();
  const list = (entities || []).filter((e) => TAGS[e.type] || e.type === "text_link" || e.type === "url")
    .sort((a, b) => a.offset - b.offset || b.length - a.length);
  function build(parent, start, end, items) {
    let at = start;
    let index = 0;
    while (index < items.length) {
      const entity = items[index];
      const stop = entity.offset + entity.length;
      const inner = [];
      let next = index + 1;
      while (next < items.length && items[next].offset < stop) {
        if (items[next].offset + items[next].length <= stop) inner.push(items[next]);
        next += 1;
      }
      if (entity.offset > at) parent.append(text.slice(at, entity.offset));
      let element;
      if (entity.type === "text_link" || entity.type === "url") {
        element = document.createElement("a");
        const href = entity.type === "url" ? text.slice(entity.offset, stop) : entity.url;
        if (/^(https?|tg):/i.test(href || "")) element.href = href;
        element.target = "_blank";
        element.rel = "noopener";
      } else {
        element = document.createElement(TAGS[entity.type]);
        if (entity.type === "spoiler") element.className = "spoiler";
      }
      build(element, entity.offset, stop, inner);
      parent.append(element);
      at = Math.max(at, stop);
      index = next;
    }
    if (end > at) parent.append(text.slice(at, end));
  }
  build(root, 0, text.length, list);
  return root;
}

function renderKeyboard(rows) {
  const box = $("keyboard");
  box.replaceChildren();
  if (!rows) return;
  for (const row of rows) {
    const line = document.createElement("div");
    for (const key of row) {
      const label = typeof key === "string" ? key : key.text;
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = label;
      if (key.web_app) button.addEventListener("click", () => openWebApp(key.web_app.url, label));
      else button.addEventListener("click", () => sendText(label));
      line.append(button);
    }
    box.append(line);
  }
}

function setReply(message, text) {
  replyTo = message.message_id;
  $("reply-text").textContent = `${s("replying-to")} ${(text || (message.photo ? "📷" : "")).slice(0, 60)}`;
  $("reply-bar").hidden = false;
  $("text").focus();
}

function clearReply() {
  replyTo = null;
  $("reply-bar").hidden = true;
}

async function sendText(text) {
  if (!text.trim()) return;
  await api("/api/send", { user_id: memberOf[view.key], chat_id: chatIdOf(view), text, reply_to: replyTo });
  clearReply();
}

async function sendPhoto(file) {
  const form = new FormData();
  form.append("user_id", memberOf[view.key]);
  form.append("chat_id", chatIdOf(view));
  form.append("caption", $("text").value);
  if (replyTo) form.append("reply_to", replyTo);
  form.append("photo", file, file.name);
  $("text").value = "";
  await api("/api/photo", form);
  clearReply();
}

// -- location --------------------------------------------------------------------------------
function drawOutline() {
  const svg = $("outline");
  svg.replaceChildren();
  const corners = state.outline;
  if (!corners) { svg.style.display = "none"; return; }
  const lats = corners.map((c) => c[0]);
  const lons = corners.map((c) => c[1]);
  const box = { south: Math.min(...lats), north: Math.max(...lats), west: Math.min(...lons), east: Math.max(...lons) };
  const scale = 280 / Math.max(box.north - box.south, box.east - box.west);
  const toXY = (lat, lon) => [10 + (lon - box.west) * scale, 10 + (box.north - lat) * scale];
  const polygon = document.createElementNS("http://www.w3.org/2000/svg", "polygon");
  polygon.setAttribute("points", corners.map((c) => toXY(c[0], c[1]).join(",")).join(" "));
  svg.append(polygon);
  svg.onclick = (event) => {
    const rect = svg.getBoundingClientRect();
    const x = (event.clientX - rect.left) * 300 / rect.width;
    const y = (event.clientY - rect.top) * 300 / rect.height;
    const lat = box.north - (y - 10) / scale;
    const lon = box.west + (x - 10) / scale;
    $("latitude").value = lat.toFixed(5);
    $("longitude").value = lon.toFixed(5);
    let pin = svg.querySelector("circle");
    if (!pin) { pin = document.createElementNS("http://www.w3.org/2000/svg", "circle"); pin.setAttribute("r", "5"); svg.append(pin); }
    pin.setAttribute("cx", x);
    pin.setAttribute("cy", y);
  };
}

// -- the clock -------------------------------------------------------------------------------
function setClock(clock) {
  clockBase = { virtual: Date.parse(clock.now), real: Date.now(), speed: clock.speed };
  $("clock-speed").textContent = `${clock.speed}×`;
  for (const button of document.querySelectorAll("[data-speed]")) {
    button.classList.toggle("active", Number(button.dataset.speed) === clock.speed);
  }
  tickClock();
}

function tickClock() {
  if (!clockBase || !state) return;
  const now = clockBase.virtual + (Date.now() - clockBase.real) * clockBase.speed;
  $("clock-now").textContent = moment(now);
}

// -- live updates ----------------------------------------------------------------------------
function viewsOf(chatId) {
  return state.chats.filter((c) => (c.private ? c.members.some((m) => m.id === chatId) : c.chat_id === chatId));
}

function listen() {
  const source = new EventSource("/api/events");
  source.onmessage = (event) => {
    const data = JSON.parse(event.data);
    if (data.kind === "reset") { forgetUnread(); loadState(); return; }
    if (data.kind === "callback_answer") { toast(data.text); return; }
    if (data.chat_id === undefined || !state) return;
    if (view && chatIdOf(view) === data.chat_id) { scheduleHistory(); return; }
    if (data.kind === "bot_message") {
      for (const chat of viewsOf(data.chat_id)) unread[chat.key] = (unread[chat.key] || 0) + 1;
      renderChats();
    }
  };
}

// -- wiring ----------------------------------------------------------------------------------
function wire() {
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("text").value;
    $("text").value = "";
    sendText(text);
  });
  $("photo").addEventListener("change", () => {
    const file = $("photo").files[0];
    if (file) sendPhoto(file);
    $("photo").value = "";
  });
  $("member").addEventListener("change", () => {
    memberOf[view.key] = Number($("member").value);
    clearReply();
    loadHistory();
  });
  $("reply-cancel").addEventListener("click", clearReply);
  $("webapp-close").addEventListener("click", () => {
    $("webapp").hidden = true;
    $("webapp-frame").src = "about:blank";
  });
  // 📎 opens the attachment menu, as in Telegram (the bot's hints say "📎 → 位置").
  const attachMenu = (open) => {
    $("attach-menu").hidden = !open;
    $("attach").setAttribute("aria-expanded", String(open));
  };
  $("attach").addEventListener("click", () => attachMenu($("attach-menu").hidden));
  $("photo").addEventListener("click", () => attachMenu(false));
  $("location-open").addEventListener("click", () => {
    attachMenu(false);
    $("location-panel").hidden = false;
    drawOutline();
  });
  $("location-cancel").addEventListener("click", () => { $("location-panel").hidden = true; });
  $("location-send").addEventListener("click", async () => {
    const latitude = Number($("latitude").value);
    const longitude = Number($("longitude").value);
    if (!Number.isFinite(latitude) || !Number.isFinite(longitude) || !$("latitude").value) return;
    $("location-panel").hidden = true;
    await api("/api/location", { user_id: memberOf[view.key], chat_id: chatIdOf(view), latitude, longitude });
  });
  for (const button of document.querySelectorAll("[data-speed]")) {
    button.addEventListener("click", async () => {
      const data = await api("/api/clock", { speed: Number(button.dataset.speed) });
      if (data.clock) setClock(data.clock);
    });
  }
  $("jump").addEventListener("click", async () => {
    const data = await api("/api/clock", { jump: true });
    if (data.clock) setClock(data.clock);
    toast(data.jumped_to ? `${s("clock.jumped")} ${moment(Date.parse(data.jumped_to))}` : s("clock.nothing-due"));
  });
  $("reset").addEventListener("click", async () => {
    if (!window.confirm(s("reset.confirm"))) return;
    const data = await api("/api/reset", {});
    if (data.clock) setClock(data.clock);
    forgetUnread();
    await loadState();
  });
  $("lang").addEventListener("change", () => {
    lang = $("lang").value;
    history.replaceState(null, "", `?lang=${encodeURIComponent(lang)}`);
    loadState();
  });
  setInterval(tickClock, 1000);
}

document.addEventListener("DOMContentLoaded", async () => {
  wire();
  await loadState();
  listen();
  document.body.dataset.ready = "1";
});
