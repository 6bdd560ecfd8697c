// The work list: open callback and follow-up tasks, and missed calls, the agent's own or the team's.
// Tasks are marked done here; a click opens the customer's file.

import { get, patch, query } from "./api.js";
import { byId, h, replace } from "./dom.js";
import { formatTime, t } from "./i18n.js";
import { numberText } from "./pop.js";

const REFRESH_DELAY_MS = 150;

export class WorkList {
  constructor({ openFile, me }) {
    this.openFile = openFile;
    this.me = me;
    this.team = false;
    this.timer = null;
    this.tasks = byId("tasks");
    this.missed = byId("missed");
    byId("work-mine").addEventListener("click", () => this.show(false));
    byId("work-team").addEventListener("click", () => this.show(true));
  }

  show(team) {
    this.team = team;
    byId("work-mine").setAttribute("aria-selected", String(!team));
    byId("work-team").setAttribute("aria-selected", String(team));
    this.refresh();
  }

  // Several changes arrive together (a missed call brings call.ended and task.created): one reload.
  changed() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refresh(), REFRESH_DELAY_MS);
  }

  async refresh() {
    try {
      const [tasks, calls] = await Promise.all([
        get(query("/api/tasks", { status: "open", mine: this.team ? null : 1, limit: 100 })),
        get(query("/api/calls", { state: "missed", direction: "in", limit: 50 })),
      ]);
      this.renderTasks(tasks.items, tasks.agents || {});
      const me = this.me();
      this.renderMissed(this.team ? calls.items : calls.items.filter((call) => call.agent_ids.includes(me)));
    } catch (error) {
      replace(this.tasks, h("li", { class: "error", text: error.message }));
    }
  }

  renderTasks(items, agents) {
    if (!items.length) {
      replace(this.tasks, h("li", { class: "empty", text: t("work.none") }));
      return;
    }
    replace(this.tasks, items.map((task) => {
      const owner = task.contact_id ? ["contact", task.contact_id]
        : task.organization_id ? ["organization", task.organization_id] : null;
      const title = task.kind === "callback" && task.who ? t("work.callback", { who: task.who }) : task.title;
      const assignee = task.assignee_agent_id ? agents[task.assignee_agent_id] : null;
      return h("li", { class: "work-item task", dataset: { taskId: task.id } },
        owner ? h("button", { type: "button", class: "link task-title", text: title,
                              onclick: () => this.openFile(...owner) })
          : h("span", { class: "task-title", text: title }),
        h("div", { class: "work-meta" },
          task.phone ? h("span", { class: "phone", text: task.phone }) : null,
          task.missed_calls > 1 ? h("span", { text: t("pop.missed_calls", { count: task.missed_calls }) }) : null,
          h("time", { datetime: task.due_at || "", text: formatTime(task.due_at || task.created_at) }),
          this.team ? h("span", { class: "assignee",
                                  text: assignee ? t("work.assignee", { name: assignee }) : t("work.unassigned") }) : null),
        h("button", { type: "button", class: "done", text: t("work.done"), onclick: (event) => this.done(task.id, event.target) }));
    }));
  }

  renderMissed(calls) {
    if (!calls.length) {
      replace(this.missed, h("li", { class: "empty", text: t("work.none") }));
      return;
    }
    replace(this.missed, calls.map((call) => {
      const only = call.matches.length === 1 ? call.matches[0] : null;
      const label = only ? only.name : numberText(call.caller);
      return h("li", { class: "work-item missed-call", dataset: { callId: call.id } },
        only ? h("button", { type: "button", class: "link", text: label, onclick: () => this.openFile(only.kind, only.id) })
          : h("span", { text: label }),
        h("div", { class: "work-meta" },
          only ? h("span", { class: "phone", text: numberText(call.caller) }) : null,
          call.matches.length > 1 ? call.matches.map((match) => h("button", { type: "button", class: "link small",
            text: match.name, onclick: () => this.openFile(match.kind, match.id) })) : null,
          h("time", { datetime: call.started_at, text: formatTime(call.started_at) })));
    }));
  }

  async done(taskId, button) {
    button.disabled = true;
    try {
      await patch(`/api/tasks/${Number(taskId)}`, { status: "done" });
      this.refresh();
    } catch (error) {
      button.disabled = false;
      button.title = error.message;
    }
  }
}
