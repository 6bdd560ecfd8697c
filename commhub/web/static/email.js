// One email in a dialog: headers and text as text; the HTML part in a sandboxed frame whose own
// Content-Security-Policy (set by the server) lets no script run and no remote image load.

import { get } from "./api.js";
import { byId, h, replace } from "./dom.js";
import { formatTime, t } from "./i18n.js";

export async function openEmail(emailId) {
  const id = Number(emailId);
  const email = await get(`/api/emails/${id}`);
  const view = byId("email-view");
  const addresses = email.addresses || {};
  const line = (label, list) => (list?.length ? h("div", { class: "email-field" },
    h("span", { class: "email-label", text: `${label}:` }), " ", list.map(formatAddress).join(", ")) : null);
  const attachments = (email.attachments || []).filter((a) => !a.inline);
  replace(view,
    h("h2", { class: "email-subject", text: email.subject || t("email.no_subject") }),
    line(t("email.from"), addresses.from), line(t("email.to"), addresses.to), line(t("email.cc"), addresses.cc),
    h("div", { class: "email-field" }, h("span", { class: "email-label", text: `${t("email.date")}:` }), " ",
      formatTime(email.sent_at)),
    email.html ? htmlFrame(id, email.html) : h("pre", { class: "email-text", text: email.text || "" }),
    attachments.length ? h("section", { class: "email-attachments" }, h("h3", { text: t("email.attachments") }),
      h("ul", {}, attachments.map((a) => h("li", {},
        h("a", { href: `/api/emails/${id}/attachments/${Number(a.id)}`, download: a.filename || "attachment",
                 rel: "noopener", text: a.filename || a.content_type }),
        ` (${formatSize(a.size)})`)))) : null);
  const dialog = byId("email-dialog");
  if (!dialog.open) dialog.showModal();
}

function htmlFrame(id, html) {
  // The sanitised HTML is shown from the server's own endpoint; this check only decides on the notice.
  const remote = /<img[^>]+src\s*=\s*["']?https?:/i.test(html);
  return h("div", { class: "email-html" },
    remote ? h("p", { class: "notice remote-blocked", text: t("email.remote_blocked") }) : null,
    h("iframe", { sandbox: "", src: `/api/emails/${id}/body.html`, title: t("email.open"), referrerpolicy: "no-referrer" }));
}

// The API gives each address as [display name, address].
function formatAddress([name, address]) {
  return name ? `${name} <${address}>` : address;
}

function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}
