// Screen-pops: one card per call, made on `call.ringing` and updated by `call.answered` and `call.ended`.
// Several matching files are all listed with the reason each matched; the console never picks one.

import { h, replace } from "./dom.js";
import { formatDuration, formatTime, t } from "./i18n.js";

const KEPT_CARDS = 20;

export class PopBoard {
  constructor(list, empty, { notes, openFile }) {
    this.list = list;
    this.empty = empty;
    this.notes = notes;
    this.openFile = openFile;
    this.cards = new Map(); // call id -> {element, message}
  }

  ringing(message) {
    const call = message.call;
    const existing = this.cards.get(call.id);
    const card = existing ? existing.element : this.newCard(call);
    if (!existing) {
      this.cards.set(call.id, { element: card, message });
      this.list.prepend(card);
      this.trim();
    } else {
      existing.message = message;
    }
    replace(card.querySelector(".pop-caller"), ...callerLines(message));
    replace(card.querySelector(".pop-matches"), ...matchList(message, this.openFile));
    this.setState(card, call);
    this.empty.hidden = true;
  }

  answered(message) {
    const entry = this.cards.get(message.call.id);
    if (!entry) return;
    const by = message.by || {};
    const text = by.name || by.key ? t("pop.answered_by", { name: by.name || by.key }) : t("pop.answered_elsewhere");
    replace(entry.element.querySelector(".pop-outcome"), text);
    this.setState(entry.element, message.call);
  }

  ended(message) {
    const entry = this.cards.get(message.call.id);
    if (!entry) return;
    const call = message.call;
    const outcome = [t("pop.ended", { state: t(`state.${call.state}`) })];
    if (call.duration !== null && call.duration !== undefined) {
      outcome.push(" · ", t("pop.duration", { duration: formatDuration(call.duration) }));
    }
    if (call.answered_by?.name) outcome.push(" · ", t("pop.answered_by", { name: call.answered_by.name }));
    replace(entry.element.querySelector(".pop-outcome"), ...outcome);
    this.setState(entry.element, call);
  }

  setState(card, call) {
    card.dataset.state = call.state;
    replace(card.querySelector(".pop-state"), t(`state.${call.state}`));
  }

  newCard(call) {
    const textarea = h("textarea", { class: "note-text", rows: 3, placeholder: t("note.placeholder"),
                                     "aria-label": t("note.placeholder") });
    const status = h("span", { class: "note-state", role: "status" });
    const form = h("form", { class: "note", onsubmit: (event) => {
      event.preventDefault();
      this.saveNote(call.id, textarea, status);
    } }, textarea, h("div", { class: "note-actions" }, h("button", { type: "submit", text: t("note.save") }), status));
    const dismiss = h("button", { type: "button", class: "dismiss", title: t("pop.dismiss"), "aria-label": t("pop.dismiss"),
                                  text: "×", onclick: () => this.remove(call.id) });
    return h("article", { class: "card pop", dataset: { callId: call.id, sourceCallId: call.provider_call_id } },
             h("header", { class: "pop-head" }, h("div", { class: "pop-caller" }),
               h("span", { class: "pop-state" }), dismiss),
             h("p", { class: "pop-outcome" }),
             h("div", { class: "pop-matches" }),
             form);
  }

  saveNote(callId, textarea, status) {
    const text = textarea.value.trim();
    if (!text) {
      showNoteState(status, "failed", t("note.empty"));
      return;
    }
    this.notes.submit({ call_id: callId }, text, (state, detail) => {
      showNoteState(status, state, detail);
      if (state === "saved") textarea.value = "";
    });
  }

  remove(callId) {
    const entry = this.cards.get(callId);
    if (!entry) return;
    entry.element.remove();
    this.cards.delete(callId);
    this.empty.hidden = this.cards.size > 0;
  }

  trim() {
    const order = [...this.list.children];
    for (const card of order.slice(KEPT_CARDS)) this.remove(Number(card.dataset.callId));
  }

  clear() {
    for (const callId of [...this.cards.keys()]) this.remove(callId);
  }
}

export function showNoteState(status, state, detail) {
  status.dataset.state = state;
  const texts = { sending: t("note.sending"), queued: t("note.queued"), saved: t("note.saved"),
                  failed: t("note.failed", { reason: detail || "" }) };
  status.textContent = texts[state];
}

export function numberText(caller) {
  if (!caller || caller.withheld) return t("pop.withheld");
  if (!caller.e164) return t("pop.invalid", { raw: caller.raw || "" });
  return caller.international || caller.e164;
}

function callerLines(message) {
  const caller = message.caller || {};
  const lines = [h("strong", { class: "pop-number", text: numberText(caller) })];
  const matches = message.matches || [];
  if (!matches.length && !caller.withheld && caller.e164) {
    const facts = [caller.region, caller.line_type ? t(`line.${caller.line_type}`) : null, caller.carrier,
                   caller.location].filter(Boolean);
    lines.push(h("span", { class: "pop-unknown", text: t("pop.unknown") }),
               h("span", { class: "pop-facts", text: facts.join(" · ") }));
  } else if (caller.withheld) {
    lines.push(h("span", { class: "pop-unknown", text: t("pop.unknown") }));
  }
  return lines;
}

function matchList(message, openFile) {
  const matches = message.matches || [];
  if (!matches.length) return [];
  const items = matches.map((match) => h("li", { class: "match", dataset: { kind: match.kind, id: match.id } },
    h("div", { class: "match-head" },
      h("button", { type: "button", class: "link match-name", text: match.name,
                    onclick: () => openFile(match.kind, match.id) }),
      match.class ? h("span", { class: `badge class-${match.class}`, text: match.class,
                                title: t("file.class", { class: match.class }) }) : null),
    match.company && match.kind === "contact" ? h("div", { class: "match-company", text: match.company }) : null,
    h("div", { class: "match-reason", text: reason(match) }),
    match.open_tasks ? h("div", { class: "match-tasks" },
      h("span", { class: "tasks-count", text: t("pop.open_tasks", { count: match.open_tasks }) }),
      h("ul", {}, (match.tasks || []).map((task) => h("li", { text: task.title })))) : null,
    match.recent ? recentList(match.recent) : null));
  const list = h("ul", { class: "matches" }, items);
  if (!message.ambiguous) return [list];
  return [h("p", { class: "pop-ambiguous", role: "note", text: t("pop.ambiguous", { count: matches.length }) }), list];
}

// The server's reason is English; the console says the same from the structured fields.
function reason(match) {
  if (match.via === "switchboard") {
    return t("reason.switchboard", { extension: match.direct_dial || "?", company: match.company || match.name });
  }
  return t(`reason.${match.kind}`, { kind: t(`phone.${match.number_kind}`) });
}

function recentList(recent) {
  if (!recent.length) return h("p", { class: "recent-none", text: t("pop.no_recent") });
  return h("details", { class: "recent", open: true },
    h("summary", { text: t("pop.recent") }),
    h("ul", {}, recent.map((entry) => h("li", {},
      h("time", { datetime: entry.occurred_at, text: formatTime(entry.occurred_at) }), " ",
      h("span", { class: `kind kind-${entry.kind}`, text: t(`kind.${entry.kind}`) }), " ",
      entry.title))));
}
