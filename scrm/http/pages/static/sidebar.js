/* The chat sidebar (/h5/sidebar): which customer the chat is with (wx.agentConfig + getCurExternalContact),
 * their card, and the quick actions. Every value from the server is put on the page as text (textContent,
 * attributes), never parsed as HTML; the words come from config/templates_pages.toml via #page-data. */
(function () {
  "use strict";

  var data = JSON.parse(document.getElementById("page-data").textContent);
  var W = data.words;
  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  var app = document.getElementById("app");
  var API = "/h5/api/sidebar";

  function t(key, values) {
    var text = W[key] || key;
    return text.replace(/\{(\w+)\}/g, function (whole, name) {
      return values && Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : whole;
    });
  }

  /* el("p", {class: "muted"}, "text", otherNode): attributes set one by one, strings become text nodes. */
  function el(tag, attrs) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      var value = attrs[name];
      if (value === null || value === undefined || value === false) return;
      if (name === "onclick" || name === "onsubmit") node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    });
    for (var i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }

  function append(node, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) child.forEach(function (c) { append(node, c); });
    else node.appendChild(typeof child === "string" || typeof child === "number"
      ? document.createTextNode(String(child)) : child);
  }

  function show() {
    app.replaceChildren();
    append(app, Array.prototype.slice.call(arguments));
  }

  function notice(text, kind) {
    return el("div", {class: "notice" + (kind ? " " + kind : ""), role: kind === "error" ? "alert" : "status"}, text);
  }

  function api(method, path, body) {
    var options = {method: method, credentials: "same-origin", headers: {"Accept": "application/json"}};
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.headers["X-CSRF-Token"] = csrf;
      options.body = JSON.stringify(body);
    }
    return fetch(path, options).then(function (resp) {
      return resp.json().catch(function () { return {error: W.error}; }).then(function (json) {
        if (resp.status === 401) {
          show(notice(W.session_expired));
          window.location.reload(); // the page itself logs in again through WeCom
        }
        return {ok: resp.ok, status: resp.status, body: json};
      });
    }, function () {
      return {ok: false, status: 0, body: {error: W.error}};
    });
  }

  // -- which customer ----------------------------------------------------------------------------------

  function start() {
    var params = new URLSearchParams(window.location.search);
    if (params.get("customer")) return showCustomer(API + "/customers/" + encodeURIComponent(params.get("customer")));
    if (params.get("view") === "mine" || !window.wx || !window.wx.agentConfig) return showMine(W.mine_hint);
    identifyChat();
  }

  function identifyChat() {
    show(el("p", {class: "muted"}, W.loading));
    var url = window.location.href.split("#")[0];
    api("GET", "/h5/api/agent-config?url=" + encodeURIComponent(url)).then(function (resp) {
      if (!resp.ok) return showMine(t("jssdk_failed", {reason: resp.body.error || resp.status}));
      var config = resp.body;
      window.wx.agentConfig({
        corpid: config.corpid, agentid: config.agentid, timestamp: config.timestamp, nonceStr: config.nonceStr,
        signature: config.signature, jsApiList: config.jsApiList,
        success: function () {
          window.wx.invoke("getCurExternalContact", {}, function (res) {
            if (res.err_msg === "getCurExternalContact:ok") {
              showCustomer(API + "/contacts/" + encodeURIComponent(res.userId));
            } else if (String(res.err_msg).indexOf("without context") >= 0) {
              showMine(W.mine_hint);
            } else {
              showMine(t("jssdk_failed", {reason: res.err_msg}));
            }
          });
        },
        fail: function (res) { showMine(t("jssdk_failed", {reason: res.errMsg || res.err_msg || ""})); }
      });
    });
  }

  // -- my customers --------------------------------------------------------------------------------------

  function showMine(hint) {
    show(el("p", {class: "muted"}, W.loading));
    api("GET", API + "/customers").then(function (resp) {
      if (!resp.ok) return show(notice(resp.body.error || W.error, "error"));
      var items = resp.body.items;
      var list = el("ul", {class: "list mine", id: "mine"}, items.map(function (c) {
        return el("li", {},
          el("a", {href: "/h5/sidebar?customer=" + encodeURIComponent(c.id), class: "customer-link"},
            el("strong", {}, c.name), c.company ? el("span", {class: "muted"}, " " + c.company) : null),
          el("div", {class: "muted"}, [c.phone, c.lifecycle, c.heat,
            W.last_contact + " " + (c.last_contact || W.never_contacted)].filter(Boolean).join(" · ")));
      }));
      show(el("section", {class: "card"}, el("h1", {}, W.mine_title), hint ? el("p", {class: "muted"}, hint) : null,
                  items.length ? list : el("p", {class: "muted", id: "mine-empty"}, W.mine_empty)));
    });
  }

  // -- the card --------------------------------------------------------------------------------------------

  function showCustomer(path) {
    show(el("p", {class: "muted"}, W.loading));
    api("GET", path).then(function (resp) {
      if (!resp.ok) {
        return show(el("p", {}, el("a", {href: "/h5/sidebar?view=mine"}, W.back)),
                    notice(resp.body.error || W.error, "error"));
      }
      renderCard(resp.body);
    });
  }

  function field(label, value, id) {
    return [el("dt", {}, label), el("dd", {id: id}, value || W.none)];
  }

  function section(title, body, id) {
    return el("section", {class: "card", id: id}, el("h2", {}, title), body);
  }

  function trend(points) {
    if (!points.length) return el("p", {class: "muted"}, W.none);
    return el("div", {class: "trend", role: "img", "aria-label": W.trend}, points.map(function (p) {
      var height = Math.max(6, Math.round(Math.abs(p.score) * 100));
      return el("span", {class: "bar " + (p.score >= 0.3 ? "good" : p.score <= -0.3 ? "bad" : "flat"),
                         title: p.at + " " + (p.score > 0 ? "+" : "") + p.score.toFixed(2),
                         "data-height": height});
    }));
  }

  function renderCard(body, message) {
    var c = body.customer;
    var tags = el("div", {id: "tags"}, c.tags.length ? c.tags.map(function (name) {
      var removable = c.crm_tags.indexOf(name) >= 0;
      return el("span", {class: "chip"}, name, removable
        ? el("button", {type: "button", class: "chip-remove", "aria-label": t("tag_remove", {tag: name}),
                        onclick: function () {
                          act("tags", {add: [], remove: [name]}).then(function (problem) {
                            if (problem) app.insertBefore(problem, app.firstChild);
                          });
                        }}, "×") : null);
    }) : el("span", {class: "muted"}, W.none));
    var header = el("section", {class: "card", id: "card"},
      el("p", {}, el("a", {href: "/h5/sidebar?view=mine"}, W.back)),
      el("h1", {id: "customer-name"}, c.name), c.company ? el("p", {class: "muted"}, c.company) : null,
      el("dl", {class: "grid"}, field(W.phone, c.phone, "phone"), field(W.owner, c.owner, "owner"),
        field(W.lifecycle, c.lifecycle, "lifecycle"), field(W.heat, c.heat, "heat"),
        field(W.deal, c.deal, "deal"), field(W.sentiment, c.sentiment, "sentiment")),
      el("h2", {}, W.tags), tags,
      c.groups.length ? [el("h2", {}, W.groups), el("div", {id: "groups"}, c.groups.map(function (g) {
        return el("span", {class: "chip"}, g);
      }))] : null);
    var parts = [message ? notice(message, "ok") : null, header];
    if (c.tickets.length) {
      parts.push(section(W.tickets, el("ul", {class: "list"}, c.tickets.map(function (ticket) {
        return el("li", {}, el("span", {class: "chip bad"}, ticket.priority), ticket.number + " " + ticket.summary);
      })), "tickets"));
    }
    parts.push(section(W.trend, trend(c.trend), "trend"));
    parts.push(section(W.follow_ups, list(body.follow_ups, function (f) {
      return [f.overdue ? el("span", {class: "chip bad"}, W.overdue) : null, el("strong", {}, f.due), " ", f.text || ""];
    }, "follow-ups")));
    parts.push(section(W.notes, list(body.notes, function (n) {
      return [el("div", {class: "muted"}, n.at + " " + n.author), el("div", {}, n.text)];
    }, "notes")));
    parts.push(section(W.messages, list(body.messages, function (m) {
      return [el("div", {class: "muted"}, (m.direction === "in" ? W.from_customer : W.from_us) + " " + m.at),
              el("div", {}, m.text)];
    }, "messages")));
    parts.push(actions(c));
    show.apply(null, parts);
    Array.prototype.forEach.call(app.querySelectorAll(".trend .bar"), function (bar) {
      bar.style.height = bar.getAttribute("data-height") + "%"; // CSSOM, not an inline style attribute
    });
  }

  function list(items, render, id) {
    if (!items.length) return el("p", {class: "muted", id: id}, W.none);
    return el("ul", {class: "list", id: id}, items.map(function (item) { return el("li", {}, render(item)); }));
  }

  // -- quick actions ---------------------------------------------------------------------------------------

  var current = null; // the customer id the actions apply to

  function actions(c) {
    current = c.id;
    var forms = [
      form("note-form", W.note_label, [el("textarea", {name: "text", maxlength: data.limits.note, required: true,
                                                       placeholder: W.note_placeholder})],
           W.note_submit, function (f) { return act("notes", {text: f.text.value}); }),
      form("follow-up-form", W.follow_up_label,
           [el("input", {name: "when", required: true, placeholder: W.when_placeholder, maxlength: 40}),
            el("input", {name: "text", placeholder: W.follow_up_text_placeholder, maxlength: data.limits.follow_up})],
           W.follow_up_submit, function (f) { return act("follow-ups", {when: f.when.value, text: f.text.value}); }),
      form("tag-form", W.tag_label, [el("input", {name: "tag", required: true, placeholder: W.tag_placeholder,
                                                  maxlength: data.limits.tag})],
           W.tag_submit, function (f) { return act("tags", {add: [f.tag.value], remove: []}); })
    ];
    if (data.can_move_stage) {
      var select = el("select", {name: "stage"}, data.stages.map(function (s) {
        return el("option", {value: s, selected: s === c.stage}, s);
      }));
      forms.push(form("stage-form", W.stage_label, [select, el("div", {class: "stage-extra"})], W.stage_submit,
                      function (f) {
                        var values = {};
                        Array.prototype.forEach.call(f.querySelectorAll(".stage-extra input"), function (input) {
                          values[input.name] = input.value;
                        });
                        return act("stage", {stage: f.stage.value, values: values}, f);
                      }));
    }
    return el("section", {class: "card actions", id: "actions"}, el("h2", {}, W.actions), forms);
  }

  function form(id, label, inputs, submit, send) {
    var status = el("div", {class: "form-status", "aria-live": "polite"});
    var button = el("button", {type: "submit"}, submit);
    var node = el("form", {id: id, novalidate: true}, el("label", {}, label), inputs, status, el("div", {class: "row"}, button));
    node.addEventListener("submit", function (event) {
      event.preventDefault();
      button.disabled = true;
      status.replaceChildren(el("span", {class: "muted"}, W.saving));
      send(node).then(function (problem) {
        button.disabled = false;
        if (problem) status.replaceChildren(problem);
      });
    });
    return node;
  }

  /* POST one action; the answer is the refreshed card (with the chat's confirmation), or a refusal to show. */
  function act(what, body, stageForm) {
    return api("POST", API + "/customers/" + encodeURIComponent(current) + "/" + what, body).then(function (resp) {
      if (resp.ok) {
        renderCard(resp.body, resp.body.saved);
        return null;
      }
      if (resp.status === 409 && stageForm && resp.body.field) {
        var extra = stageForm.querySelector(".stage-extra");
        extra.replaceChildren(el("label", {}, resp.body.label),
                              el("input", {name: resp.body.field, required: true}));
      }
      return notice(resp.body.error || W.error, "error");
    });
  }

  start();
})();
