// The supervisor wallboard: agents by state with time in state, calls
// waiting, abandon rate against the cap per campaign, and the quota board by
// team. The body is GET /api/v1/floor, refreshed by the live `floor` event
// and by polling every 5 s (whichever comes first); time in state ticks locally.

import { api } from "./api.js";
import { formatDuration, formatFraction, formatNumber, formatTime, label, t } from "./i18n.js";
import { attempt, el, every, liveEvents, startPage } from "./page.js";

const $ = (id) => document.querySelector(`[data-testid=${id}]`);
const STATE_ORDER = ["talking", "reserved", "wrap_up", "ready", "paused", "connecting", "signed_out"];
const POLL_S = 5;

let floor = null;
let updatedMs = null;

function renderAgents() {
  const groups = new Map();
  for (const agent of floor.agents) {
    if (!groups.has(agent.state)) groups.set(agent.state, []);
    groups.get(agent.state).push(agent);
  }
  const known = STATE_ORDER.filter((s) => groups.has(s));
  const other = [...groups.keys()].filter((s) => !STATE_ORDER.includes(s)).sort();
  $("agent-states").replaceChildren(
    ...[...known, ...other].map((state) =>
      el(
        "div",
        { class: "state-column", testid: "state-group", "data-state": state },
        el("h3", {},
          el("span", { class: "badge", "data-state": state, text: label("state", state) }),
          el("span", { class: "count", testid: "state-count",
            text: formatNumber(groups.get(state).length) }),
        ),
        el(
          "ul",
          {},
          ...groups
            .get(state)
            .sort((a, b) => (a.since_ms ?? Infinity) - (b.since_ms ?? Infinity))
            .map((agent) =>
              el(
                "li",
                { testid: "wall-agent", "data-agent": agent.agent_id },
                el("span", { class: "name", text: agent.name || agent.agent_id }),
                el("span", { class: "muted", text: agent.team ?? "" }),
                agent.reason ? el("span", { class: "muted", text: label("pause", agent.reason) }) : null,
                el("span", { class: "since", testid: "agent-since",
                  "data-since": agent.since_ms === null ? null : String(agent.since_ms) }),
              ),
            ),
        ),
      ),
    ),
  );
}

function renderCampaigns() {
  $("abandon-rows").replaceChildren(
    ...floor.campaigns.map((c) => {
      const over = c.abandon_rate_today > c.abandon_cap;
      const share = c.abandon_cap > 0 ? Math.min(100, (100 * c.abandon_rate_today) / c.abandon_cap) : 0;
      return el(
        "tr",
        { testid: "abandon-row", "data-campaign": c.id, class: over ? "over" : null },
        el("td", { text: c.id }),
        el("td", { testid: "abandon-rate", text: formatFraction(c.abandon_rate_today) }),
        el("td", { text: formatFraction(c.abandon_cap) }),
        el("td", {},
          el("div", { class: "meter", title: over ? t("wall.over_cap") : t("wall.under_cap") },
            el("div", { class: over ? "fill over" : "fill", style: `width:${share}%` }))),
      );
    }),
  );
  if (!floor.campaigns.length) {
    $("abandon-rows").append(el("tr", {}, el("td", { colspan: "4", class: "muted",
      text: t("wall.no_campaigns") })));
  }
}

function renderTeams() {
  $("team-rows").replaceChildren(
    ...floor.quota_by_team.map((team) =>
      el(
        "tr",
        { testid: "team-row", "data-team": team.team },
        el("td", { text: team.team }),
        el("td", { text: formatNumber(team.agents) }),
        el("td", { text: formatNumber(team.effective_calls, 1) }),
        el("td", { text: formatNumber(team.target, 1) }),
        el("td", {},
          el("div", { class: "meter" },
            el("div", { class: team.percent >= 100 ? "fill met" : "fill",
              style: `width:${Math.min(100, Math.max(0, team.percent))}%` })),
          el("span", { text: t("wall.percent_value", { percent: formatNumber(team.percent, 1) }) })),
      ),
    ),
  );
  if (!floor.quota_by_team.length) {
    $("team-rows").append(el("tr", {}, el("td", { colspan: "5", class: "muted",
      text: t("wall.no_teams") })));
  }
}

function render(body) {
  floor = body;
  updatedMs = Date.now();
  $("calls-waiting").textContent = formatNumber(floor.calls_waiting);
  $("calls-in-progress").textContent = formatNumber(floor.calls_in_progress);
  $("agents-total").textContent = formatNumber(floor.agents.length);
  $("wall-updated").textContent = formatTime(updatedMs);
  renderAgents();
  renderCampaigns();
  renderTeams();
  tick();
}

function tick() {
  const now = Date.now();
  // An agent whose last change the floor has not seen shows no time in state.
  for (const since of document.querySelectorAll("[data-testid=agent-since][data-since]")) {
    since.textContent = formatDuration(now - Number(since.dataset.since));
  }
}

async function main() {
  const user = await startPage({ roles: ["supervisor", "admin"], titleKey: "wall.title" });
  if (user === null) return;
  const refresh = async () => render(await api("GET", "/api/v1/floor"));
  liveEvents({ floor: render }, () => attempt(refresh));
  every(POLL_S, () => attempt(refresh));
  every(1, tick);
}

main();
