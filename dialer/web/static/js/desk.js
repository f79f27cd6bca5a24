// The agent desk: state buttons, the current call's lead card, the result of
// the call, manual dial and today's quota. The desk body comes from
// GET /api/v1/desk and every action's answer, then from the live `desk` event;
// the quota from /desk/quota and the live `quota` event.

import { api } from "./api.js";
import { formatDateTime, formatDuration, formatNumber, label, t } from "./i18n.js";
import { attempt, el, every, liveEvents, startPage } from "./page.js";

const $ = (id) => document.querySelector(`[data-testid=${id}]`);
const IN_CALL = new Set(["reserved", "talking"]);

let desk = null;
let quota = null;
let agentId = null;
let liveDesks = 0; // desk bodies received from the live stream so far
// A pause asked for during a call waits for the call's end; the desk body does not
// say so, so the page remembers it until the agent is paused or ready again.
let pendingPause = null;

function renderState() {
  // Reserved for a lead on the preview card: no call is coming until the agent accepts it.
  const previewing = desk.state === "reserved" && desk.preview !== null;
  $("desk-state").textContent = label("state", previewing ? "previewing" : desk.state);
  $("desk-state").dataset.state = desk.state;
  const reason = desk.pause_reasons.find((r) => r.code === desk.reason);
  // System pauses (not ready, phone lost, wrap-up exceeded) are not the agent's to choose.
  const reasonText = reason ? reason.label : label("pause", desk.reason);
  $("desk-reason").textContent = desk.reason ? reasonText : "";
  $("desk-campaign").textContent = desk.campaign ?? t("desk.no_campaign");
  const signedOut = desk.state === "signed_out";
  const busy = IN_CALL.has(desk.state);
  $("btn-sign-in").disabled = !signedOut;
  $("btn-sign-out").disabled = signedOut || busy;
  $("btn-ready").disabled = signedOut || desk.state === "ready" || busy;
  // Asked for during a call, a pause applies when the call ends.
  $("btn-pause").disabled = signedOut;
  $("pause-reason").disabled = signedOut;
  $("btn-preview-next").disabled = signedOut || busy || desk.preview !== null;
  $("btn-dial").disabled = signedOut || busy;

  if (["paused", "ready", "signed_out"].includes(desk.state)) pendingPause = null;
  const pending = $("pause-pending");
  pending.hidden = pendingPause === null;
  pending.textContent = pendingPause === null ? "" : t("desk.pause_pending", { reason: pendingPause });

  const select = $("pause-reason");
  const chosen = select.value;
  select.replaceChildren(
    ...desk.pause_reasons.map((r) => el("option", { value: r.code, text: r.label })),
  );
  if (desk.pause_reasons.some((r) => r.code === chosen)) select.value = chosen;
}

function renderCall() {
  const call = desk.current_call;
  $("no-call").hidden = call !== null || desk.preview !== null;
  $("lead-card").hidden = call === null;
  if (call !== null) {
    const card = $("lead-card");
    card.dataset.callId = call.call_id;
    $("call-number").textContent = call.number;
    $("lead-name").textContent = call.lead?.name ?? t("lead.unknown");
    $("lead-phone").textContent = call.lead?.phone ?? call.number;
    const fields = Object.entries(call.lead?.fields ?? {});
    $("lead-fields").replaceChildren(
      ...fields.flatMap(([name, value]) => [el("dt", { text: name }), el("dd", { text: value })]),
    );
    $("btn-hangup").disabled = !IN_CALL.has(desk.state);
  }
  const preview = desk.preview;
  $("preview-card").hidden = preview === null;
  if (preview !== null) {
    $("preview-name").textContent = preview.name ?? t("lead.unknown");
    $("preview-phone").textContent = preview.phone;
  }
}

function renderDisposition() {
  const select = $("disposition-code");
  const chosen = select.value;
  select.replaceChildren(
    el("option", { value: "", text: t("desk.disposition_choose") }),
    // The server labels each result in the agent's language (or as the floor configured it).
    ...desk.dispositions.map((d) => el("option", { value: d.code, text: d.label })),
  );
  if (desk.dispositions.some((d) => d.code === chosen)) select.value = chosen;
  const form = $("disposition-form");
  form.dataset.awaiting = String(desk.awaiting_disposition);
  $("btn-disposition").disabled = !desk.awaiting_disposition;
  $("disposition-hint").hidden = desk.awaiting_disposition;
  showCallback();
}

function asksCallback(code) {
  return desk !== null && desk.dispositions.some((d) => d.code === code && d.callback);
}

function showCallback() {
  const isCallback = asksCallback($("disposition-code").value);
  $("callback-fields").hidden = !isCallback;
  $("callback-at").required = isCallback;
}

function renderDesk() {
  if (desk === null) return;
  document.body.dataset.state = desk.state;
  renderState();
  renderCall();
  renderDisposition();
  tick();
}

function renderQuota() {
  if (quota === null) return;
  $("quota-day").textContent = quota.day;
  $("quota-empty").hidden = quota.items.length > 0;
  $("quota-list").replaceChildren(
    ...quota.items.map((item) => {
      const width = Math.max(0, Math.min(100, item.percent));
      return el(
        "div",
        {
          class: "quota",
          testid: "quota-item",
          "data-metric": item.metric,
          "data-done": String(item.done),
          "data-target": String(item.target),
          "data-percent": String(item.percent),
        },
        el("div", { class: "quota-label" },
          el("span", { text: item.label }),
          el("span", {
            testid: "quota-numbers",
            text: t("desk.quota_numbers", {
              done: formatNumber(item.done, 1),
              target: formatNumber(item.target, 1),
              percent: formatNumber(item.percent, 1),
            }),
          }),
        ),
        el("div", { class: "meter", role: "progressbar", "aria-valuemin": "0",
          "aria-valuemax": "100", "aria-valuenow": String(width), "aria-label": item.label },
          el("div", { class: item.shortfall > 0 ? "fill" : "fill met", style: `width:${width}%` }),
        ),
        el("div", {
          class: item.shortfall > 0 ? "shortfall" : "shortfall met",
          testid: "quota-shortfall",
          text: item.shortfall > 0
            ? t("desk.quota_shortfall", { shortfall: formatNumber(item.shortfall, 1) })
            : t("desk.quota_met"),
        }),
      );
    }),
  );
}

function tick() {
  if (desk === null) return;
  const now = Date.now();
  $("desk-since").textContent = formatDuration(now - desk.since_ms);
  $("desk-since").title = formatDateTime(desk.since_ms);
  const call = desk.current_call;
  if (call === null) return;
  // In wrap-up the call is over: its length stops at the state change.
  const ended = desk.state === "wrap_up";
  const until = ended ? desk.since_ms : now;
  $("call-duration").textContent =
    formatDuration(until - call.started_ms) + (ended ? ` (${t("desk.call_ended")})` : "");
}

async function act(path, body) {
  const seen = liveDesks;
  const answer = await attempt(() => api("POST", `/api/v1/desk/${path}`, body));
  // A live desk event that came while the action was on its way is as new as the
  // answer or newer (every change is sent live): the answer must not roll it back.
  if (answer !== undefined && answer !== null && liveDesks === seen) {
    desk = answer;
    renderDesk();
  }
  return answer;
}

async function refresh() {
  const seen = liveDesks;
  const [body, progress] = await Promise.all([
    api("GET", "/api/v1/desk"),
    api("GET", "/api/v1/desk/quota"),
  ]);
  if (liveDesks === seen) {
    desk = body;
    renderDesk();
  }
  quota = progress;
  renderQuota();
}

function wire() {
  $("btn-sign-in").addEventListener("click", () => act("sign-in", {}));
  $("btn-sign-out").addEventListener("click", () => act("sign-out"));
  $("btn-ready").addEventListener("click", () => {
    pendingPause = null; // READY cancels a pause that was waiting for the call's end
    return act("state", { state: "ready" });
  });
  $("btn-pause").addEventListener("click", async () => {
    const select = $("pause-reason");
    const answer = await act("state", { state: "paused", reason: select.value });
    if (answer && !["paused", "signed_out"].includes(answer.state)) {
      pendingPause = select.selectedOptions[0]?.textContent ?? select.value;
      renderDesk();
    }
  });
  $("btn-hangup").addEventListener("click", () => act("hangup"));
  $("btn-preview-next").addEventListener("click", () => act("preview/next"));
  $("btn-preview-accept").addEventListener("click", () => act("preview/accept"));
  $("btn-preview-skip").addEventListener("click", async () => {
    const reason = $("preview-skip-reason");
    // The reason was this lead's: the next lead's skip starts from an empty one.
    if (await act("preview/skip", { reason: reason.value.trim() })) reason.value = "";
  });
  $("disposition-code").addEventListener("change", showCallback);
  $("disposition-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const code = $("disposition-code").value;
    const body = { code, note: $("disposition-note").value.trim() };
    if (asksCallback(code)) {
      const local = $("callback-at").value;
      // datetime-local is the agent's wall time; the API wants an instant with its zone.
      body.callback_at = local ? new Date(local).toISOString() : null;
      body.callback_anyone = $("callback-anyone").checked;
    }
    if (await act("disposition", body)) form.reset();
  });
  const pad = $("dial-pad");
  for (const key of ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"]) {
    pad.append(
      el("button", {
        type: "button",
        testid: `dial-key-${key === "*" ? "star" : key === "#" ? "hash" : key}`,
        text: key,
        onclick: () => {
          $("dial-number").value += key;
        },
      }),
    );
  }
  $("dial-clear").addEventListener("click", () => {
    $("dial-number").value = "";
  });
  $("dial-form").addEventListener("submit", (event) => {
    event.preventDefault();
    act("dial", { number: $("dial-number").value.trim() });
  });
}

async function main() {
  const user = await startPage({ roles: ["agent"], titleKey: "desk.title" });
  if (user === null) return;
  agentId = user.agent_id;
  wire();
  await attempt(refresh);
  liveEvents(
    {
      desk: (body) => {
        if (body.agent_id !== agentId) return;
        liveDesks += 1;
        desk = body;
        renderDesk();
      },
      quota: (body) => {
        if (body.agent_id !== agentId) return;
        quota = body;
        renderQuota();
      },
    },
    () => attempt(refresh), // what changed while the stream was down
  );
  every(1, tick);
}

main();
