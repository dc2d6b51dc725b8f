// The studio page: draws stored messages as they arrive (server-sent events), sends
// uploads with progress, typed text, presses and account questions. No build step.
"use strict";
const $ = (id) => document.getElementById(id);
const feed = $("feed");
const page = document.body.dataset;

function toast(lines) {
  if (!lines || !lines.length) return;
  const box = $("toast");
  box.textContent = lines.join("\n");
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, 4000);
}

async function post(path, data) {
  const response = await fetch(path, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(data),
  });
  toast((await response.json().catch(() => ({}))).alerts);
}

function element(tag, props, children) {
  const node = Object.assign(document.createElement(tag), props);
  if (children) node.append(...children);
  return node;
}

function mediaOf(media) {
  const tag = { image: "img", video: "video", audio: "audio" }[media.kind] || "img";
  const node = element(tag, { src: "/media/" + media.id, className: "media" });
  node.dataset.id = media.id;
  if (tag !== "img") Object.assign(node, { controls: true, playsInline: true, preload: "auto" });
  return node;
}

function askForm(message, form) {
  const input = element("input", { placeholder: form.placeholder, maxLength: form.max, required: true });
  input.setAttribute("aria-label", form.label);
  const ask = element("form", { className: "ask" }, [input, element("button", { textContent: "➤" })]);
  ask.onsubmit = (event) => {
    event.preventDefault();
    post("/say", { text: input.value, session: form.session });
    input.value = "";
  };
  return ask;
}

function draw(message) {
  let node = $("m" + message.id);
  if (!node) node = feed.appendChild(element("article", { id: "m" + message.id }));
  const kept = node.querySelector(".media");
  node.className = message.mine ? "mine" : "bot";
  node.replaceChildren();
  if (message.media) {
    node.append(kept && kept.dataset.id === message.media.id ? kept : mediaOf(message.media));
  }
  if (message.text) node.append(element("p", { textContent: message.text }));
  for (const row of message.rows || []) {
    node.append(element("div", { className: "row" }, row.map((button) => {
      const press = element("button", { type: "button", className: button.style, textContent: button.label });
      press.onclick = async () => {
        press.disabled = true;
        await post("/press", { message: message.id, data: button.data });
        press.disabled = false;
      };
      return press;
    })));
  }
  if (message.form) node.append(askForm(message, message.form));
}

function upload(file, at) {
  if (file.size > Number(page.limit)) return toast([page.tooLarge]);
  const bar = $("progress");
  const request = new XMLHttpRequest();
  request.open("POST", "/upload?at=" + encodeURIComponent(at) + "&name=" + encodeURIComponent(file.name));
  request.setRequestHeader("Content-Type", file.type || "application/octet-stream");
  request.upload.onprogress = (event) => {
    bar.hidden = false;
    bar.value = event.lengthComputable ? (100 * event.loaded) / event.total : 50;
  };
  request.onloadend = () => {
    bar.hidden = true;
    try { toast(JSON.parse(request.responseText).alerts); } catch (error) { /* the page says it */ }
  };
  request.send(file);
}

$("file").onchange = () => $("file").parentElement.classList.toggle("chosen", $("file").files.length > 0);
$("composer").onsubmit = (event) => {
  event.preventDefault();
  const file = $("file").files[0];
  const text = $("text").value.trim();
  if (file) upload(file, text);
  else if (text) post("/say", { text });
  $("composer").reset();
  $("file").parentElement.classList.remove("chosen");
};
for (const button of document.querySelectorAll("[data-account]")) {
  button.onclick = () => post("/account", { what: button.dataset.account });
}
for (const button of document.querySelectorAll("[data-lang]")) {
  button.onclick = async () => {
    await post("/account", { what: "lang", code: button.dataset.lang });
    location.reload();
  };
}

const news = new EventSource("/events");
news.onmessage = (event) => {
  const { messages, balance } = JSON.parse(event.data);
  messages.forEach(draw);
  $("balance").textContent = page.balance.replace("{n}", balance);
  $("balance").dataset.value = balance;
  if (messages.length) window.scrollTo(0, document.body.scrollHeight);
};
