// Call notes go over the WebSocket (`note`, answered by `note.saved` with the same `ref`). A note written
// while offline waits here and is sent again after every reconnect until the server confirms it; the
// server recognises a `ref` it has already saved, so a confirmation lost on the way never doubles a note.
// Pending notes live in sessionStorage: a reload of the tab keeps them.

const STORAGE_KEY = "commhub.pendingNotes";

export class NoteOutbox {
  constructor(socket) {
    this.socket = socket;
    this.listeners = new Map(); // ref -> (state, detail) callback
    this.pending = new Map(JSON.parse(sessionStorage.getItem(STORAGE_KEY) || "[]"));
  }

  // target: {call_id} or {contact_id}; returns the ref the states are reported under.
  submit(target, text, onState) {
    const ref = `note-${crypto.randomUUID()}`;
    this.pending.set(ref, { type: "note", ref, text, ...target });
    this.listeners.set(ref, onState);
    this.save();
    this.sendOne(ref);
    return ref;
  }

  sendOne(ref) {
    const note = this.pending.get(ref);
    if (!note) return;
    const sent = this.socket.send(note);
    this.listeners.get(ref)?.(sent ? "sending" : "queued");
  }

  // After (re)connecting: everything not yet confirmed goes again.
  flush() {
    for (const ref of this.pending.keys()) this.sendOne(ref);
  }

  // Returns true when the message was the answer to a note of this tab.
  handle(message) {
    const ref = message.ref;
    if (!ref || !this.pending.has(ref)) return false;
    if (message.type === "note.saved") {
      this.pending.delete(ref);
      this.save();
      this.listeners.get(ref)?.("saved", message.entry);
      this.listeners.delete(ref);
      return true;
    }
    if (message.type === "error") {
      // Refused for a reason a retry cannot fix (empty text, unknown call): stop sending it.
      this.pending.delete(ref);
      this.save();
      this.listeners.get(ref)?.("failed", message.message);
      this.listeners.delete(ref);
      return true;
    }
    return false;
  }

  clear() {
    this.pending.clear();
    this.listeners.clear();
    this.save();
  }

  save() {
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify([...this.pending]));
  }
}
