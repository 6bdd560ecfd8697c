// Call notes go over the WebSocket (`note`, answered by `note.saved` with the same `ref`). A note written
// while offline waits here and is sent again after every reconnect until the server confirms it; the
// server recognises a `ref` it has already saved, so a confirmation lost on the way never doubles a note.
// Pending notes live in sessionStorage under the agent's id: a reload of the tab keeps them, and so
// does an expired session when the same agent signs in again; nobody else ever sends them.

const STORAGE_PREFIX = "commhub.pendingNotes.";

export class NoteOutbox {
  constructor(socket) {
    this.socket = socket;
    this.key = null;
    this.listeners = new Map(); // ref -> (state, detail) callback
    this.pending = new Map();
  }

  open(agentId) {
    this.key = STORAGE_PREFIX + agentId;
    this.pending = new Map(JSON.parse(sessionStorage.getItem(this.key) || "[]"));
  }

  // `discard`: the agent signed out on purpose, so unsent notes go; otherwise they wait for the agent.
  close({ discard }) {
    if (discard) {
      this.pending.clear();
      this.save();
    }
    this.pending = new Map();
    this.listeners.clear();
    this.key = null;
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

  // Returns true when the message was the answer to a note of this tab. An `error` is a refusal a
  // retry cannot fix (empty text, unknown call): the note stops being sent, and the agent is told why.
  handle(message) {
    const ref = message.ref;
    if (!ref || !this.pending.has(ref)) return false;
    if (message.type === "note.saved") this.settle(ref, "saved", message.entry);
    else if (message.type === "error") this.settle(ref, "failed", message.message);
    else return false;
    return true;
  }

  settle(ref, state, detail) {
    this.pending.delete(ref);
    this.save();
    this.listeners.get(ref)?.(state, detail);
    this.listeners.delete(ref);
  }

  save() {
    if (this.key) sessionStorage.setItem(this.key, JSON.stringify([...this.pending]));
  }
}
