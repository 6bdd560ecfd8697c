// The agent WebSocket: reconnects by itself with growing, jittered pauses, and resumes from the last
// seq it saw, so a network drop or a server restart loses no pop. Each tab keeps its own position.

const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 15000;
const PING_EVERY_MS = 20000;
// A socket that answers no ping for this long is dead even if the browser has not noticed yet.
const PONG_TIMEOUT_MS = 10000;

export class AgentSocket {
  // onRefused: a connection closed before it opened (the server may have refused the session).
  constructor({ onMessage, onState, onRefused }) {
    this.onMessage = onMessage;
    this.onState = onState;
    this.onRefused = onRefused;
    this.lastSeq = null;
    this.failures = 0;
    this.socket = null;
    this.stopped = true;
    this.retryTimer = null;
    this.pingTimer = null;
    this.pongTimer = null;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.clearPing();
    if (this.socket) this.socket.close(1000, "signed out");
    this.socket = null;
    this.lastSeq = null;
  }

  get open() {
    return this.socket !== null && this.socket.readyState === WebSocket.OPEN;
  }

  send(message) {
    if (!this.open) return false;
    this.socket.send(JSON.stringify(message));
    return true;
  }

  // Reconnect now (after the browser says it is online again), not when the pause would end.
  retryNow() {
    if (this.stopped || this.open || (this.socket && this.socket.readyState === WebSocket.CONNECTING)) return;
    clearTimeout(this.retryTimer);
    this.connect();
  }

  connect() {
    if (this.stopped) return;
    this.onState("connecting");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const after = this.lastSeq === null ? "" : `?after=${this.lastSeq}`;
    const socket = new WebSocket(`${scheme}//${location.host}/ws${after}`);
    this.socket = socket;
    this.opened = false;
    socket.addEventListener("open", () => {
      this.opened = true;
      this.failures = 0;
      this.onState("connected");
      this.schedulePing();
    });
    socket.addEventListener("message", (event) => this.receive(event.data));
    socket.addEventListener("close", () => {
      const refused = this.socket === socket && !this.opened;
      this.drop(socket);
      if (refused) this.onRefused();
    });
  }

  // Forget a socket and plan the next attempt; a close event that comes later for it changes nothing.
  drop(socket) {
    if (this.socket !== socket) return;
    this.socket = null;
    this.clearPing();
    if (socket.readyState !== WebSocket.CLOSED) socket.close(4000, "no answer");
    this.scheduleRetry();
  }

  receive(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    clearTimeout(this.pongTimer);
    if (message.type === "hello" && (this.lastSeq === null || message.seq < this.lastSeq)) {
      // A first connect starts from now: older pops are history, not calls ringing. A server whose
      // counter is behind ours has a new database: its messages are new whatever their seq.
      this.lastSeq = message.seq;
    }
    if (CHANGES.has(message.type)) {
      // A replay may overlap what arrived live; each change is shown once.
      if (this.lastSeq !== null && message.seq <= this.lastSeq) return;
      this.lastSeq = message.seq;
    }
    this.onMessage(message);
  }

  scheduleRetry() {
    if (this.stopped) return;
    const ceiling = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** this.failures);
    const delay = ceiling / 2 + Math.random() * ceiling / 2;
    this.failures += 1;
    this.onState("offline", Math.ceil(delay / 1000));
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  schedulePing() {
    this.clearPing();
    this.pingTimer = setInterval(() => {
      if (!this.send({ type: "ping" })) return;
      const socket = this.socket;
      this.pongTimer = setTimeout(() => this.drop(socket), PONG_TIMEOUT_MS);
    }, PING_EVERY_MS);
  }

  clearPing() {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
  }
}

// Server messages that report a change take a new seq; replies to this session repeat the current one.
const CHANGES = new Set(["call.ringing", "call.answered", "call.ended", "task.created", "task.updated",
                         "history.added"]);
