// The agent console: sign-in, the live socket, and the three columns (pops, customer, work list).

import { api, get, whenSignedOut } from "./api.js";
import { CustomerView } from "./customer.js";
import { byId } from "./dom.js";
import { language, setLanguage, t, translate } from "./i18n.js";
import { NoteOutbox } from "./notes.js";
import { PopBoard } from "./pop.js";
import { Ringer } from "./ringer.js";
import { AgentSocket } from "./socket.js";
import { WorkList } from "./worklist.js";

const state = { agent: null };
const me = () => state.agent?.id;

// A browser does not say why a WebSocket handshake failed: asking the API tells an ended session
// (its 401 brings back the sign-in form) from a server that is just not there.
const socket = new AgentSocket({ onMessage: receive, onState: showConnection,
                                 onRefused: () => get("/api/me").catch(() => null) });
const notes = new NoteOutbox(socket);
const customer = new CustomerView();
const openFile = (kind, id) => customer.open(kind, id).catch((error) => customer.fail(error));
const pops = new PopBoard(byId("pops"), byId("pops-empty"), { notes, openFile });
const work = new WorkList({ openFile, me });
const ringer = new Ringer(byId("sound"), byId("notify"));

function receive(message) {
  if (notes.handle(message)) return;
  switch (message.type) {
    case "hello":
      notes.flush();
      work.refresh();
      break;
    case "call.ringing":
      pops.ringing(message);
      ringer.ring(message);
      break;
    case "call.answered":
      pops.answered(message);
      break;
    case "call.ended":
      pops.ended(message);
      if (message.call.state === "missed") work.changed();
      break;
    case "task.created":
    case "task.updated":
      work.changed();
      break;
    case "history.added":
      customer.added(message.entry);
      break;
    default:
      break;
  }
}

let lastConnection = ["offline", 0];

function showConnection(kind, seconds = 0) {
  lastConnection = [kind, seconds];
  const element = byId("connection");
  element.dataset.state = kind;
  element.textContent = kind === "offline" ? t("conn.offline", { seconds }) : t(`conn.${kind}`);
}

function showConsole(agent) {
  state.agent = agent;
  byId("who").textContent = agent.name;
  byId("login-view").hidden = true;
  byId("console-view").hidden = false;
  byId("logout").hidden = false;
  byId("sound-toggle").hidden = false;
  byId("notify-toggle").hidden = !("Notification" in window);
  notes.open(agent.id);
  socket.start();
}

// `discard`: the agent signed out on purpose; an expired session keeps the agent's unsent notes.
function showLogin(message = "", { discard = false } = {}) {
  socket.stop();
  notes.close({ discard });
  pops.clear();
  customer.clear();
  state.agent = null;
  byId("who").textContent = "";
  byId("console-view").hidden = true;
  byId("logout").hidden = true;
  byId("sound-toggle").hidden = true;
  byId("notify-toggle").hidden = true;
  byId("login-view").hidden = false;
  byId("login-error").textContent = message;
  showConnection("offline");
  byId("connection").textContent = "";
  byId("login-token").focus();
}

byId("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = byId("login-token");
  try {
    const reply = await api("POST", "/api/session", { token: input.value.trim() });
    input.value = "";
    showConsole(reply.agent);
  } catch (error) {
    byId("login-error").textContent = t("login.failed", { reason: error.status === 0 ? t("error.network") : error.message });
  }
});

byId("logout").addEventListener("click", async () => {
  await api("DELETE", "/api/session").catch(() => null);
  showLogin("", { discard: true });
});

byId("language").addEventListener("change", (event) => {
  setLanguage(event.target.value);
  showConnection(...lastConnection);
  if (!state.agent) byId("connection").textContent = "";
  work.refresh();
});

whenSignedOut(() => {
  if (state.agent) showLogin(t("error.session"));
});

window.addEventListener("online", () => socket.retryNow());

async function start() {
  byId("language").value = language();
  translate(document);
  try {
    showConsole(await get("/api/me"));
  } catch {
    showLogin();
  }
}

start();
