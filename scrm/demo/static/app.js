// The demo console: pick a persona on the left, chat in the middle, watch the customer record on
// the right. Everything comes from /demo/api/ (scrm/demo/console.py); nothing is invented here.
"use strict";

const POLL_MS = 4000;  // background arrivals (reminders due on the demo clock) show up without a click
const SUGGESTIONS = {
  "销售": ["查 赵磊", "我的待办", "记 赵磊 电话沟通，要报价", "跟进 赵磊 明天上午10点 发方案", "帮助"],
  "客服": ["工单", "帮助"],
  "主管": ["查 华东", "帮助"],
  "管理员": ["查 赵磊", "帮助"],
  customer: ["你好，我想要一份新的报价单，这周能发给我吗？", "上次的货用了两天就坏了，不给退款我就去12315投诉", "好的，谢谢"],
};

const ui = {
  data: null,
  chat: "staff:zhangwei",
  seen: {},         // chat -> last entry id the visitor has looked at
  recordId: null,   // the customer shown on the right
  busy: false,
};

const $ = (id) => document.getElementById(id);

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

// The part of WeCom markdown the service writes: headings, bold, colour, quotes, links, code.
function renderMarkdown(text) {
  return escapeHtml(text)
    .split("\n")
    .map((line) => line
      .replace(/^#{1,6}\s+(.*)$/, '<b class="md-h">$1</b>')
      .replace(/^&gt;\s?(.*)$/, '<span class="md-comment">$1</span>'))
    .join("\n")
    .replace(/&lt;font color=&quot;(info|comment|warning)&quot;&gt;([\s\S]*?)&lt;\/font&gt;/g, '<span class="md-$1">$2</span>')
    .replace(/\*\*(.+?)\*\*/g, "<b>$1</b>")
    .replace(/\[([^\]]+)\]\(([^)]+)\)/g, "<u>$1</u>")
    .replace(/`([^`]+)`/g, "<code>$1</code>");
}

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  if (!response.ok) {
    throw new Error((await response.text()) || `HTTP ${response.status}`);
  }
  return response.json();
}

function personas() {
  const p = ui.data.personas;
  return [...p.staff.map((s) => ({ ...s, kind: "staff" })), ...p.customers.map((c) => ({ ...c, kind: "customer" }))];
}

function persona(chat) {
  return personas().find((p) => p.chat === chat);
}

function entriesOf(chat) {
  return ui.data.entries.filter((e) => e.chat === chat);
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "status error" : "status";
}

function renderClock() {
  const clock = ui.data.clock;
  $("clock-now").textContent = `${clock.now} 周${clock.weekday}`;
  const bar = $("presets");
  bar.replaceChildren(...clock.presets.map((preset) => {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.preset = preset.key;
    button.textContent = preset.label;
    button.title = `${preset.target}：${preset.hint}`;
    button.disabled = ui.busy || !preset.enabled;
    button.addEventListener("click", () => advance(preset));
    return button;
  }));
}

// The first line of the latest message, without markdown marks, as the chat list shows it.
function preview(entry) {
  const line = (entry.title || entry.text).split("\n")[0];
  return line.replace(/^#{1,6}\s+|^>\s?/, "").replace(/\*\*/g, "").replace(/<[^>]+>/g, "");
}

function chatItem(p) {
  const li = document.createElement("li");
  li.className = "chat-item" + (p.chat === ui.chat ? " active" : "");
  li.dataset.chat = p.chat;
  const entries = entriesOf(p.chat);
  const last = entries[entries.length - 1];
  const unread = p.chat === ui.chat ? 0 : entries.filter((e) => e.id > (ui.seen[p.chat] || 0)).length;
  const tag = p.kind === "staff" ? p.role || p.position : "客户";
  const sub = p.kind === "staff" ? p.position : p.company;
  li.innerHTML = `
    <div class="avatar ${p.kind}">${escapeHtml(p.name.slice(-2))}</div>
    <div class="chat-meta">
      <div class="chat-name">${escapeHtml(p.name)} <span class="role-tag ${p.kind}">${escapeHtml(tag)}</span></div>
      <div class="preview">${escapeHtml(last ? preview(last) : sub)}</div>
    </div>
    ${unread ? `<span class="badge" title="未读消息">${unread}</span>` : ""}`;
  li.addEventListener("click", () => selectChat(p.chat));
  return li;
}

function renderList() {
  const p = ui.data.personas;
  $("staff-list").replaceChildren(...p.staff.map((s) => chatItem({ ...s, kind: "staff" })));
  $("customer-list").replaceChildren(...p.customers.map((c) => chatItem({ ...c, kind: "customer" })));
}

function bubble(entry, who) {
  const wrap = document.createElement("div");
  wrap.className = `msg ${entry.side}`;
  wrap.dataset.entry = entry.id;
  const me = entry.side === "out";
  const sender = me ? who.name : entry.sender || "SCRM 助手";
  let inner;
  if (entry.format === "textcard") {
    inner = `<div class="bubble card"><div class="card-title">${escapeHtml(entry.title)}</div>
      <div class="card-text">${escapeHtml(entry.text)}</div>
      <div class="card-foot"><span>${escapeHtml(entry.button || "详情")}</span></div></div>`;
  } else if (entry.format === "group_send") {
    const action = entry.confirmed
      ? '<span class="done">已发送</span>'
      : `<button type="button" data-msgid="${escapeHtml(entry.msgid)}">发送</button>`;
    inner = `<div class="bubble card"><div class="card-title">群发助手 · 待发送给客户：${escapeHtml(entry.customers.join("、"))}</div>
      <div class="card-text">${escapeHtml(entry.text)}</div>
      <div class="card-foot"><span>确认后客户会在微信收到这条消息</span>${action}</div></div>`;
  } else if (entry.format === "markdown") {
    inner = `<div class="bubble">${renderMarkdown(entry.text)}</div>`;
  } else {
    inner = `<div class="bubble">${escapeHtml(entry.text)}</div>`;
  }
  const avatarText = me ? who.name.slice(-2) : entry.format === "group_send" ? "群发" : sender.slice(0, 2);
  wrap.innerHTML = `
    <div class="avatar ${me ? who.kind : "bot"}">${escapeHtml(avatarText)}</div>
    <div class="msg-body">
      ${me ? "" : `<div class="msg-sender">${escapeHtml(entry.format === "group_send" ? "群发助手" : sender)}</div>`}
      ${inner}
      <div class="msg-time">演示时间 ${escapeHtml(entry.at)}</div>
    </div>`;
  const confirm = wrap.querySelector("button[data-msgid]");
  if (confirm) confirm.addEventListener("click", () => confirmGroupSend(entry.msgid));
  return wrap;
}

function renderChat() {
  const who = persona(ui.chat);
  $("chat-title").textContent = who.kind === "staff" ? `${who.name}（${who.role || who.position}）` : `${who.name} · ${who.company}`;
  $("chat-subtitle").textContent = who.kind === "staff"
    ? `你正以 ${who.name} 的身份在企业微信里和 SCRM 助手对话`
    : `你正以客户 ${who.name} 的身份在微信里给「星河科技客服」发消息`;
  const box = $("messages");
  const entries = entriesOf(ui.chat);
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  const grew = box.dataset.showing !== ui.chat || box.querySelectorAll(".msg").length !== entries.length;
  box.replaceChildren(...(entries.length ? entries.map((e) => bubble(e, who))
    : [Object.assign(document.createElement("p"), { className: "empty", textContent: "还没有消息，试试下面的示例。" })]));
  if (atBottom || grew) box.scrollTop = box.scrollHeight;
  box.dataset.showing = ui.chat;
  if (entries.length) ui.seen[ui.chat] = entries[entries.length - 1].id;
  const key = who.kind === "staff" ? who.role : "customer";
  $("suggestions").replaceChildren(...(SUGGESTIONS[key] || SUGGESTIONS["销售"]).map((text) => {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = text;
    button.addEventListener("click", () => { $("input").value = text; $("input").focus(); });
    return button;
  }));
  $("send").disabled = ui.busy;
}

function renderRecordSelect() {
  const select = $("record-select");
  const customers = ui.data.personas.customers.filter((c) => c.customer_id);
  if (select.options.length !== customers.length) {
    select.replaceChildren(...customers.map((c) => new Option(`${c.name} · ${c.company}`, c.customer_id)));
  }
  if (ui.recordId === null && customers.length) ui.recordId = customers[0].customer_id;
  select.value = String(ui.recordId);
}

function render() {
  renderClock();
  renderList();
  renderChat();
  renderRecordSelect();
  renderPageChoices();
}

// The H5 pages as the chosen member sees them in WeCom: the sidebar in the toolbar of their chat with a
// customer (or from the workbench), the 看板 for managers. /demo/pages/open signs them in at the simulator.
function option(value, label) {
  const node = document.createElement("option");
  node.value = value;
  node.textContent = label;
  return node;
}

function renderPageChoices() {
  const as = $("page-as");
  const chosen = as.value || "zhangwei";
  as.replaceChildren(...ui.data.personas.staff.map((s) => option(s.key, `${s.name}（${s.role || s.position}）`)));
  as.value = chosen;
  const who = ui.data.personas.staff.find((s) => s.key === as.value);
  const chat = $("page-chat");
  const current = chat.value;
  chat.replaceChildren(option("", "工作台（不在客户聊天中）"),
                       ...(who ? who.contacts : []).map((c) => option(c.key, `与 ${c.name} 的聊天 · 聊天工具栏`)));
  if ([...chat.options].some((o) => o.value === current)) chat.value = current;
  $("open-dashboard").disabled = !(who && who.manages);
  updatePageLink("sidebar");
}

function pageUrl(page) {
  const params = new URLSearchParams({ as: $("page-as").value, page });
  if (page === "sidebar" && $("page-chat").value) params.set("chat", $("page-chat").value);
  return `/demo/pages/open?${params}`;
}

function updatePageLink(page) {
  $("page-new-window").href = pageUrl(page);
}

function openPage(page) {
  const frame = $("page-frame");
  frame.hidden = false;
  frame.src = pageUrl(page);
  frame.scrollIntoView({ block: "start" });
  updatePageLink(page);
}

async function refreshRecord() {
  if (ui.recordId === null) return;
  const r = await api(`/demo/api/customers/${ui.recordId}`);
  const chips = (items, cls = "") => items.length ? items.map((t) => `<span class="chip ${cls}">${escapeHtml(t)}</span>`).join("") : '<span class="muted">无</span>';
  const tickets = r.open_tickets.length ? r.open_tickets.map((t) => `
      <div class="ticket"><b>${escapeHtml(t.number)}</b> ${escapeHtml(t.category)} · ${escapeHtml(t.priority)} · ${escapeHtml(t.status)}
      <div>处理人：${escapeHtml(t.assignee || "待分配")}</div><div class="muted">${escapeHtml(t.summary)}</div></div>`).join("")
    : '<p class="muted">无未结工单</p>';
  const messages = r.messages.length ? r.messages.map((m) => `
      <div class="rec-msg"><span class="dir">${m.at} ${m.direction === "in" ? "客户 →" : "→ 客户"} ${escapeHtml(m.channel)}</span>
      ${m.mood ? `<span class="mood-${escapeHtml(m.mood)}">[${escapeHtml(m.mood)}]</span>` : ""}
      <div>${escapeHtml(m.text)}</div>${m.tags.length ? chips(m.tags, "topic") : ""}</div>`).join("")
    : '<p class="muted">还没有消息</p>';
  $("record").innerHTML = `
    <div class="record-name">${escapeHtml(r.name)}</div>
    <div class="muted">${escapeHtml(r.company)}</div>
    <dl class="fields">
      <dt>电话</dt><dd>${escapeHtml(r.phone || "—")}</dd>
      <dt>负责人</dt><dd>${escapeHtml(r.owner || "—")}</dd>
      <dt>客户状态</dt><dd>${escapeHtml(r.lifecycle)}</dd>
      <dt>热度</dt><dd>${escapeHtml(String(r.lead_score))}</dd>
      <dt>情绪</dt><dd>${escapeHtml(r.mood)}</dd>
      <dt>商机阶段</dt><dd>${escapeHtml(r.stage || "—")}</dd>
      <dt>生日</dt><dd>${escapeHtml(r.birthday || "—")}（关怀：${escapeHtml(r.care)}）</dd>
      <dt>下次跟进</dt><dd>${r.next_follow_up ? `${escapeHtml(r.next_follow_up.due)} ${escapeHtml(r.next_follow_up.text)}` : "—"}</dd>
      <dt>标签</dt><dd>${chips(r.tags)}</dd>
      <dt>话题</dt><dd>${chips(r.topics.map((t) => `${t.tag}×${t.count}`), "topic")}</dd>
    </dl>
    <h4>未结工单</h4><div id="record-tickets">${tickets}</div>
    <h4>最近消息</h4>${messages}`;
}

function selectChat(chat) {
  ui.chat = chat;
  const who = persona(chat);
  if (who.kind === "customer" && who.customer_id) {
    ui.recordId = who.customer_id;
    refreshRecord().catch((e) => setStatus(`档案读取失败：${e.message}`, true));
  }
  render();
  $("input").focus();
}

async function run(what, action, done = () => "") {
  ui.busy = true;
  setStatus(what);
  render();
  try {
    ui.data = await action();
    setStatus(done(ui.data));
  } catch (e) {
    setStatus(e.message, true);
  } finally {
    ui.busy = false;
    render();
    await refreshRecord().catch((e) => setStatus(`档案读取失败：${e.message}`, true));
  }
}

function send(event) {
  event.preventDefault();
  const text = $("input").value.trim();
  if (!text || ui.busy) return;
  $("input").value = "";
  run("发送中，等待回复…", () => api("/demo/api/say", { chat: ui.chat, text }));
}

function advance(preset) {
  run(`快进到 ${preset.target}，运行到期的定时任务…`,
    () => api("/demo/api/clock", { preset: preset.key }),
    (state) => {
      $("status").title = state.ran.join("\n");
      return `已快进到 ${preset.target}，运行了 ${state.ran.length} 个到期的定时任务`;
    });
}

function confirmGroupSend(msgid) {
  run("群发中…", () => api(`/demo/api/group-sends/${encodeURIComponent(msgid)}/confirm`, {}));
}

async function poll() {
  if (!ui.busy) {
    try {
      const data = await api("/demo/api/state");
      if (!ui.busy) {
        const grew = data.entries.length !== ui.data.entries.length;
        ui.data = data;
        render();
        if (grew) await refreshRecord();
      }
    } catch (e) {
      setStatus(`连接中断：${e.message}`, true);
    }
  }
  setTimeout(poll, POLL_MS);
}

async function start() {
  $("composer").addEventListener("submit", send);
  $("input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) send(event);
  });
  $("record-select").addEventListener("change", (event) => {
    ui.recordId = Number(event.target.value);
    refreshRecord().catch((e) => setStatus(`档案读取失败：${e.message}`, true));
  });
  $("page-as").addEventListener("change", renderPageChoices);
  $("page-chat").addEventListener("change", () => updatePageLink("sidebar"));
  $("open-sidebar").addEventListener("click", () => openPage("sidebar"));
  $("open-dashboard").addEventListener("click", () => openPage("dashboard"));
  ui.data = await api("/demo/api/state");
  render();
  await refreshRecord();
  setTimeout(poll, POLL_MS);
}

start().catch((e) => setStatus(`加载失败：${e.message}`, true));
