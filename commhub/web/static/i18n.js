// German and English texts of the console. The language comes from the browser unless the agent picked one.

const TEXTS = {
  de: {
    "language": "Sprache",
    "logout": "Abmelden",
    "sound": "Klingelton",
    "notifications": "Benachrichtigungen",
    "close": "Schließen",
    "login.title": "Anmelden",
    "login.hint": "Mit Ihrem Agenten-Token anmelden (commhub agents token NAME).",
    "login.token": "Token",
    "login.submit": "Anmelden",
    "login.failed": "Anmeldung fehlgeschlagen: {reason}",
    "conn.connected": "verbunden",
    "conn.connecting": "verbinde …",
    "conn.offline": "getrennt – neuer Versuch in {seconds} s",
    "pops.title": "Anrufe",
    "pops.empty": "Keine Anrufe. Klingelt Ihr Telefon, erscheint der Anrufer hier.",
    "pop.ringing": "klingelt",
    "pop.answered": "angenommen",
    "pop.answered_by": "angenommen von {name}",
    "pop.answered_elsewhere": "angenommen von einem Kollegen",
    "pop.ended": "beendet: {state}",
    "pop.duration": "Dauer {duration}",
    "pop.withheld": "Rufnummer unterdrückt",
    "pop.invalid": "keine gültige Rufnummer: {raw}",
    "pop.unknown": "Unbekannter Anrufer",
    "pop.ambiguous": "{count} Akten passen zu dieser Nummer – keine wurde ausgewählt:",
    "pop.open_tasks": "{count} offene Aufgabe(n)",
    "pop.recent": "Letzte Kontakte",
    "pop.no_recent": "Noch keine Kontakte",
    "pop.dismiss": "Ausblenden",
    "pop.open": "Akte öffnen",
    "pop.missed_calls": "{count} verpasste Anrufe",
    "note.placeholder": "Gesprächsnotiz …",
    "note.save": "Notiz speichern",
    "note.sending": "wird gespeichert …",
    "note.saved": "gespeichert",
    "note.queued": "offline – wird gespeichert, sobald die Verbindung steht",
    "note.failed": "nicht gespeichert: {reason}",
    "note.empty": "Die Notiz ist leer.",
    "line.fixed_line": "Festnetz", "line.mobile": "Mobilfunk", "line.fixed_line_or_mobile": "Festnetz oder Mobilfunk",
    "line.toll_free": "gebührenfrei", "line.premium_rate": "Premium-Dienst", "line.shared_cost": "Service-Nummer",
    "line.voip": "VoIP", "line.personal_number": "persönliche Rufnummer", "line.pager": "Pager", "line.uan": "UAN",
    "line.voicemail": "Mailbox", "line.unknown": "Anschlussart unbekannt",
    "state.ringing": "klingelt", "state.answered": "angenommen", "state.completed": "beendet",
    "state.missed": "verpasst", "state.rejected": "abgewiesen", "state.busy": "besetzt", "state.failed": "fehlgeschlagen",
    "state.forwarded": "weitergeleitet",
    "reason.contact": "{kind}-Nummer dieser Person", "reason.organization": "{kind}-Nummer dieser Firma",
    "reason.switchboard": "Durchwahl {extension} über die Zentrale von {company}",
    "phone.work": "Geschäfts", "phone.mobile": "Mobil", "phone.home": "Privat", "phone.fax": "Fax",
    "phone.switchboard": "Zentral", "phone.undefined": "Telefon",
    "numberkind.work": "geschäftlich", "numberkind.mobile": "mobil", "numberkind.home": "privat",
    "numberkind.fax": "Fax", "numberkind.switchboard": "Zentrale",
    "note.on_call": "Notiz zum Anruf",
    "search.placeholder": "Name, Firma, Telefonnummer oder E-Mail",
    "search.submit": "Suchen",
    "search.none": "Nichts gefunden.",
    "search.phone_none": "Keine Akte zu {number}.",
    "customer.title": "Kunde",
    "file.class": "Klasse {class}",
    "file.organization": "Firma",
    "file.people": "Ansprechpartner",
    "file.phones": "Telefon",
    "file.emails": "E-Mail",
    "file.timeline": "Verlauf",
    "file.add_note": "Notiz hinzufügen",
    "file.more": "Ältere Einträge laden",
    "file.reload": "Aktualisieren",
    "file.empty": "Noch keine Einträge.",
    "kind.call": "Anruf", "kind.note": "Notiz", "kind.email": "E-Mail", "kind.task": "Aufgabe",
    "call.in": "Eingehender Anruf", "call.out": "Ausgehender Anruf",
    "call.with": "mit {name}",
    "email.from": "Von", "email.to": "An", "email.cc": "Cc", "email.date": "Datum", "email.subject": "Betreff",
    "email.open": "E-Mail öffnen",
    "email.attachments": "Anhänge",
    "email.remote_blocked": "Externe Bilder wurden blockiert.",
    "email.in": "eingegangen", "email.out": "gesendet",
    "email.no_subject": "(kein Betreff)",
    "work.title": "Arbeitsliste",
    "work.mine": "Meine", "work.team": "Team",
    "work.tasks": "Offene Rückrufe und Aufgaben",
    "work.missed": "Verpasste Anrufe",
    "work.none": "Nichts offen.",
    "work.done": "Erledigt",
    "work.callback": "Rückruf {who}",
    "work.assignee": "für {name}",
    "work.unassigned": "nicht zugewiesen",
    "error.network": "keine Verbindung zum Server",
    "error.session": "Sitzung abgelaufen – bitte neu anmelden",
  },
  en: {
    "language": "Language",
    "logout": "Sign out",
    "sound": "Ring sound",
    "notifications": "Notifications",
    "close": "Close",
    "login.title": "Sign in",
    "login.hint": "Sign in with your agent token (commhub agents token NAME).",
    "login.token": "Token",
    "login.submit": "Sign in",
    "login.failed": "Sign-in failed: {reason}",
    "conn.connected": "connected",
    "conn.connecting": "connecting …",
    "conn.offline": "offline – retrying in {seconds} s",
    "pops.title": "Calls",
    "pops.empty": "No calls. When your phone rings, the caller shows here.",
    "pop.ringing": "ringing",
    "pop.answered": "answered",
    "pop.answered_by": "answered by {name}",
    "pop.answered_elsewhere": "answered by a colleague",
    "pop.ended": "ended: {state}",
    "pop.duration": "duration {duration}",
    "pop.withheld": "Number withheld",
    "pop.invalid": "not a valid number: {raw}",
    "pop.unknown": "Unknown caller",
    "pop.ambiguous": "{count} files match this number – none was picked:",
    "pop.open_tasks": "{count} open task(s)",
    "pop.recent": "Last contacts",
    "pop.no_recent": "No contacts yet",
    "pop.dismiss": "Dismiss",
    "pop.open": "Open file",
    "pop.missed_calls": "{count} missed calls",
    "note.placeholder": "Call note …",
    "note.save": "Save note",
    "note.sending": "saving …",
    "note.saved": "saved",
    "note.queued": "offline – will be saved when the connection is back",
    "note.failed": "not saved: {reason}",
    "note.empty": "The note is empty.",
    "line.fixed_line": "landline", "line.mobile": "mobile", "line.fixed_line_or_mobile": "landline or mobile",
    "line.toll_free": "toll-free", "line.premium_rate": "premium rate", "line.shared_cost": "shared cost",
    "line.voip": "VoIP", "line.personal_number": "personal number", "line.pager": "pager", "line.uan": "UAN",
    "line.voicemail": "voicemail", "line.unknown": "line type unknown",
    "state.ringing": "ringing", "state.answered": "answered", "state.completed": "completed",
    "state.missed": "missed", "state.rejected": "rejected", "state.busy": "busy", "state.failed": "failed",
    "state.forwarded": "forwarded",
    "reason.contact": "{kind} number of this person", "reason.organization": "{kind} number of this company",
    "reason.switchboard": "direct dial {extension} via the switchboard of {company}",
    "phone.work": "work", "phone.mobile": "mobile", "phone.home": "home", "phone.fax": "fax",
    "phone.switchboard": "switchboard", "phone.undefined": "phone",
    "numberkind.work": "work", "numberkind.mobile": "mobile", "numberkind.home": "home",
    "numberkind.fax": "fax", "numberkind.switchboard": "switchboard",
    "note.on_call": "Note on a call",
    "search.placeholder": "Name, company, phone number or email",
    "search.submit": "Search",
    "search.none": "Nothing found.",
    "search.phone_none": "No file has {number}.",
    "customer.title": "Customer",
    "file.class": "Class {class}",
    "file.organization": "Company",
    "file.people": "People",
    "file.phones": "Phone",
    "file.emails": "Email",
    "file.timeline": "History",
    "file.add_note": "Add note",
    "file.more": "Load older entries",
    "file.reload": "Refresh",
    "file.empty": "No entries yet.",
    "kind.call": "Call", "kind.note": "Note", "kind.email": "Email", "kind.task": "Task",
    "call.in": "Incoming call", "call.out": "Outgoing call",
    "call.with": "with {name}",
    "email.from": "From", "email.to": "To", "email.cc": "Cc", "email.date": "Date", "email.subject": "Subject",
    "email.open": "Open email",
    "email.attachments": "Attachments",
    "email.remote_blocked": "Remote images were blocked.",
    "email.in": "received", "email.out": "sent",
    "email.no_subject": "(no subject)",
    "work.title": "Work list",
    "work.mine": "Mine", "work.team": "Team",
    "work.tasks": "Open callbacks and tasks",
    "work.missed": "Missed calls",
    "work.none": "Nothing open.",
    "work.done": "Done",
    "work.callback": "Call back {who}",
    "work.assignee": "for {name}",
    "work.unassigned": "unassigned",
    "error.network": "no connection to the server",
    "error.session": "session expired – please sign in again",
  },
};

const STORAGE_KEY = "commhub.language";
let current = pick();

function pick() {
  const chosen = localStorage.getItem(STORAGE_KEY);
  if (chosen && chosen in TEXTS) return chosen;
  for (const tag of navigator.languages || [navigator.language || "de"]) {
    const base = String(tag).slice(0, 2).toLowerCase();
    if (base in TEXTS) return base;
  }
  return "de";
}

export function language() {
  return current;
}

export function setLanguage(code) {
  if (!(code in TEXTS)) return;
  current = code;
  localStorage.setItem(STORAGE_KEY, code);
  translate(document);
}

// Placeholders are filled in as text: whatever a value holds, it never becomes markup.
export function t(key, values = {}) {
  const text = TEXTS[current][key] ?? TEXTS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

export function has(key) {
  return key in TEXTS[current];
}

export function translate(root) {
  document.documentElement.lang = current;
  for (const element of root.querySelectorAll("[data-i18n]")) element.textContent = t(element.dataset.i18n);
  for (const element of root.querySelectorAll("[data-i18n-placeholder]")) {
    element.placeholder = t(element.dataset.i18nPlaceholder);
  }
}

const LOCALES = { de: "de-DE", en: "en-GB" };

export function formatTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  const today = new Date().toDateString() === date.toDateString();
  const options = today ? { hour: "2-digit", minute: "2-digit" }
    : { day: "2-digit", month: "2-digit", year: "numeric", hour: "2-digit", minute: "2-digit" };
  return date.toLocaleString(LOCALES[current], options);
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const minutes = Math.floor(seconds / 60);
  return `${minutes}:${String(seconds % 60).padStart(2, "0")} min`;
}
