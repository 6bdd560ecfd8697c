// The customer view: search, a contact's or organization's file, and its unified timeline
// (calls, notes, emails, tasks), newest first, with notes written straight into it.

import { get, post, query } from "./api.js";
import { byId, h, replace } from "./dom.js";
import { formatDuration, formatTime, t } from "./i18n.js";
import { openEmail } from "./email.js";

const PAGE = 30;
// Digits, spaces and the usual separators: the agent typed a phone number.
const LOOKS_LIKE_NUMBER = /^[+(]?[\d\s()/.\-]{4,}$/;

export class CustomerView {
  constructor() {
    this.results = byId("search-results");
    this.file = byId("file");
    this.shown = null; // {kind, id, next}
    byId("search-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.search(byId("search").value.trim()).catch((error) => this.fail(error));
    });
  }

  async search(text) {
    if (!text) return;
    let contacts = [];
    let organizations = [];
    if (LOOKS_LIKE_NUMBER.test(text)) {
      const match = await get(query("/api/contacts", { phone: text }));
      contacts = match.matches.map((m) => ({ kind: m.kind, id: m.id, name: m.name, company: m.company,
                                             class: m.customer_class }));
      if (!contacts.length) {
        replace(this.results, h("p", { class: "empty", text: t("search.phone_none", { number: text }) }));
        return;
      }
    } else {
      const [people, companies] = await Promise.all([get(query("/api/contacts", { q: text, limit: 20 })),
                                                     get(query("/api/organizations", { q: text, limit: 10 }))]);
      contacts = people.items.map((c) => ({ kind: "contact", id: c.id, name: c.name,
                                            company: c.organization?.name, class: c.class }));
      organizations = companies.items.map((o) => ({ kind: "organization", id: o.id, name: o.name, class: o.class }));
    }
    const found = [...contacts, ...organizations];
    if (!found.length) {
      replace(this.results, h("p", { class: "empty", text: t("search.none") }));
      return;
    }
    replace(this.results, h("ul", { class: "result-list" }, found.map((item) => h("li", {},
      h("button", { type: "button", class: "link result", dataset: { kind: item.kind, id: item.id },
                    onclick: () => this.open(item.kind, item.id).catch((error) => this.fail(error)) },
        h("span", { class: "result-name", text: item.name }),
        item.company && item.kind === "contact" ? h("span", { class: "result-company", text: item.company }) : null,
        item.kind === "organization" ? h("span", { class: "result-company", text: t("file.organization") }) : null,
        item.class ? h("span", { class: `badge class-${item.class}`, text: item.class }) : null)))));
  }

  async open(kind, id) {
    const base = kind === "contact" ? `/api/contacts/${id}` : `/api/organizations/${id}`;
    const [record, page] = await Promise.all([get(base), get(query(`${base}/history`, { limit: PAGE }))]);
    this.shown = { kind, id, base, next: page.next };
    this.file.hidden = false;
    const timeline = h("ol", { class: "timeline" }, page.items.map((entry) => entryItem(entry)));
    const more = h("button", { type: "button", class: "more", text: t("file.more"), hidden: !page.next,
                               onclick: () => this.more(timeline, more).catch((error) => this.fail(error)) });
    const reload = h("button", { type: "button", class: "reload", text: t("file.reload"),
                                 onclick: () => this.open(kind, id).catch((error) => this.fail(error)) });
    replace(this.file, fileHeader(record, (k, i) => this.open(k, i).catch((error) => this.fail(error))),
            this.noteForm(), h("div", { class: "timeline-head" }, h("h3", { text: t("file.timeline") }), reload),
            page.items.length ? null : h("p", { class: "empty timeline-empty", text: t("file.empty") }),
            timeline, more);
    this.file.scrollIntoView({ block: "start", behavior: "instant" });
  }

  async more(timeline, button) {
    const shown = this.shown;
    if (!shown?.next) return;
    const page = await get(query(`${shown.base}/history`, { limit: PAGE, before: shown.next }));
    shown.next = page.next;
    timeline.append(...page.items.map((entry) => entryItem(entry)));
    button.hidden = !page.next;
  }

  noteForm() {
    const textarea = h("textarea", { class: "note-text", rows: 2, placeholder: t("note.placeholder"),
                                     "aria-label": t("file.add_note") });
    const status = h("span", { class: "note-state", role: "status" });
    return h("form", { class: "note file-note", onsubmit: async (event) => {
      event.preventDefault();
      const text = textarea.value.trim();
      if (!text) return;
      const shown = this.shown;
      status.textContent = t("note.sending");
      try {
        const entry = await post(`${shown.base}/notes`, { text });
        textarea.value = "";
        status.textContent = t("note.saved");
        this.added(entry);
      } catch (error) {
        status.textContent = t("note.failed", { reason: error.message });
      }
    } }, textarea, h("div", { class: "note-actions" }, h("button", { type: "submit", text: t("file.add_note") }), status));
  }

  // A new entry (from this tab, another tab or a colleague) that concerns the open file goes on top.
  added(entry) {
    const shown = this.shown;
    if (!shown) return;
    const ids = shown.kind === "contact" ? entry.contact_ids : entry.organization_ids;
    if (!ids?.includes(shown.id)) return;
    const timeline = this.file.querySelector(".timeline");
    if (!timeline || timeline.querySelector(`[data-entry-id="${Number(entry.id)}"]`)) return;
    this.file.querySelector(".timeline-empty")?.remove();
    timeline.prepend(entryItem(entry));
  }

  fail(error) {
    replace(this.results, h("p", { class: "error", role: "alert", text: error.message }));
  }

  clear() {
    this.shown = null;
    this.file.hidden = true;
    replace(this.file);
    replace(this.results);
    byId("search").value = "";
  }
}

function fileHeader(record, open) {
  const organization = record.kind === "contact" ? record.organization : null;
  return h("header", { class: "file-head", dataset: { kind: record.kind, id: record.id } },
    h("h2", { class: "file-name" }, record.name,
      record.class ? h("span", { class: `badge class-${record.class}`, text: record.class,
                                 title: t("file.class", { class: record.class }) }) : null),
    record.position ? h("p", { class: "file-position", text: record.position }) : null,
    organization ? h("p", {}, h("button", { type: "button", class: "link file-company", text: organization.name,
                                           onclick: () => open("organization", organization.id) })) : null,
    h("dl", { class: "file-facts" },
      record.phones?.length ? [h("dt", { text: t("file.phones") }),
        h("dd", {}, record.phones.map((phone) => h("span", { class: "phone", text: `${phone.raw} (${t(`numberkind.${phone.kind}`)})` })))] : null,
      record.emails?.length ? [h("dt", { text: t("file.emails") }),
        h("dd", {}, record.emails.map((address) => h("span", { class: "address", text: address })))] : null));
}

export function entryItem(entry) {
  const data = entry.data || {};
  const who = entry.agent?.name;
  const item = h("li", { class: `entry kind-${entry.kind}`, dataset: { entryId: entry.id, kind: entry.kind } },
    h("div", { class: "entry-head" },
      h("span", { class: `kind kind-${entry.kind}`,
                  text: entry.kind === "note" && entry.call_id ? t("note.on_call") : t(`kind.${entry.kind}`) }),
      h("time", { datetime: entry.occurred_at, text: formatTime(entry.occurred_at) }),
      who ? h("span", { class: "entry-agent", text: who }) : null),
    ...entryBody(entry, data));
  return item;
}

function entryBody(entry, data) {
  if (entry.kind === "call") {
    const parts = [t(data.direction === "out" ? "call.out" : "call.in")];
    if (data.state && data.state !== "completed") parts.push(t(`state.${data.state}`));
    if (data.duration) parts.push(formatDuration(data.duration));
    return [h("p", { class: "entry-title", text: parts.join(" · ") }),
            entry.body ? h("p", { class: "entry-body", text: entry.body }) : null];
  }
  if (entry.kind === "email") {
    const from = data.from ? (data.from.name ? `${data.from.name} <${data.from.address}>` : data.from.address) : "";
    const recipients = [...(data.to || []), ...(data.cc || [])].join(", ");
    return [
      h("p", { class: "entry-title" }, h("button", { type: "button", class: "link email-open", text: entry.title || t("email.no_subject"),
                                                   onclick: () => openEmail(data.email_id) })),
      h("p", { class: "email-route" }, h("span", { text: `${t("email.from")}: ${from}` }), " → ",
        h("span", { text: `${t("email.to")}: ${recipients}` })),
      entry.body ? h("p", { class: "entry-body", text: entry.body }) : null,
    ];
  }
  return [entry.kind === "note" ? null : h("p", { class: "entry-title", text: entry.title }),
          entry.body ? h("p", { class: "entry-body", text: entry.body }) : null];
}
