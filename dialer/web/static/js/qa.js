// The QA console: search calls, play one (two-channel waveform, seeking),
// score it against a scorecard, and work through the sample queue.
// The selected call is kept in the address (#call=<id>) so a reload (for
// example after a language change) comes back to it.

import { api, query } from "./api.js";
import { formatDateTime, formatDuration, formatNumber, label, t } from "./i18n.js";
import { attempt, el, startPage } from "./page.js";
import { Waveform } from "./waveform.js";

const $ = (id) => document.querySelector(`[data-testid=${id}]`);
const PAGE_SIZE = 25;
const OUTCOMES = [
  "answered", "busy", "no_answer", "invalid_number", "unavailable", "declined", "cancelled",
  "timeout", "auth_failed", "trunk_failure", "rejected", "transferred", "interrupted",
];

let offset = 0;
let total = 0;
let selected = null;
let scorecards = [];
let waveform = null;

function filters() {
  const form = new FormData($("search-form"));
  const values = {};
  for (const [name, value] of form.entries()) values[name] = String(value).trim();
  return values;
}

function yesNo(value) {
  return value ? t("qa.yes") : t("qa.no");
}

async function search() {
  const page = await api("GET", `/api/v1/cdrs${query({ ...filters(), limit: PAGE_SIZE, offset })}`);
  total = page.total;
  $("result-count").textContent = t("qa.result_count", {
    total: formatNumber(page.total),
    from: formatNumber(page.items.length ? offset + 1 : 0),
    to: formatNumber(offset + page.items.length),
  });
  $("cdr-rows").replaceChildren(...page.items.map(row));
  $("page-prev").disabled = offset === 0;
  $("page-next").disabled = offset + page.items.length >= total;
}

function row(cdr) {
  const tr = el(
    "tr",
    { testid: "cdr-row", "data-call-id": cdr.call_id, tabindex: "0",
      class: selected === cdr.call_id ? "selected" : null },
    el("td", { text: formatDateTime(cdr.created_at_ms) }),
    el("td", { text: cdr.agent ?? "" }),
    el("td", { text: cdr.campaign ?? "" }),
    el("td", { text: cdr.number }),
    el("td", { text: label("outcome", cdr.outcome) }),
    el("td", { text: formatDuration(cdr.talk_ms) }),
    el("td", { text: yesNo(cdr.effective) }),
    el("td", { text: cdr.disposition_label ?? "" }),
    el("td", { text: yesNo(cdr.has_recording) }),
    el("td", { testid: "cdr-score", text: cdr.qa_score === null ? "" : formatNumber(cdr.qa_score, 1) }),
  );
  const open = () => attempt(() => select(cdr.call_id));
  tr.addEventListener("click", open);
  tr.addEventListener("keydown", (event) => {
    if (event.key === "Enter") open();
  });
  return tr;
}

async function select(callId) {
  selected = callId;
  window.history.replaceState(null, "", `#call=${encodeURIComponent(callId)}`);
  for (const tr of document.querySelectorAll("[data-testid=cdr-row]")) {
    tr.classList.toggle("selected", tr.dataset.callId === callId);
  }
  const cdr = await api("GET", `/api/v1/cdrs/${encodeURIComponent(callId)}`);
  $("player-empty").hidden = true;
  $("player").hidden = false;
  $("player").dataset.callId = callId;
  $("player-call").textContent = callId;
  $("player-facts").textContent = t("qa.player_facts", {
    agent: cdr.agent ?? "",
    number: cdr.number,
    time: formatDateTime(cdr.created_at_ms),
    talk: formatDuration(cdr.talk_ms),
  });
  renderScores(cdr);
  const audio = $("player-audio");
  audio.pause();
  waveform.clear();
  if (!cdr.has_recording) {
    audio.removeAttribute("src");
    audio.load();
    $("player-position").textContent = t("qa.no_recording");
    return;
  }
  audio.src = `/api/v1/recordings/${encodeURIComponent(callId)}`;
  const width = Math.min(2000, Math.max(200, Math.round($("waveform").clientWidth)));
  const peaks = await api(
    "GET",
    `/api/v1/recordings/${encodeURIComponent(callId)}/peaks${query({ points: width })}`,
  );
  waveform.show(peaks);
  position();
}

function renderScores(cdr) {
  const scores = cdr.qa_scores ?? [];
  $("score-list").replaceChildren(
    ...(scores.length
      ? scores.map((s) =>
          el("li", {
            testid: "score-entry",
            text: t("qa.score_entry", {
              score: formatNumber(s.score, 1),
              scorecard: s.scorecard,
              reviewer: s.reviewer,
              time: formatDateTime(s.at_ms),
            }) + (s.failed ? ` · ${t("qa.failed")}` : ""),
          }),
        )
      : [el("li", { class: "muted", text: t("qa.no_scores") })]),
  );
}

function position() {
  const audio = $("player-audio");
  const duration = waveform.durationS();
  $("player-position").textContent = t("qa.position", {
    at: formatDuration(audio.currentTime * 1000),
    of: formatDuration(duration * 1000),
  });
}

function renderScorecard() {
  const card = scorecards.find((c) => c.ref === $("scorecard-select").value) ?? scorecards[0];
  if (!card) {
    $("score-items").replaceChildren(el("p", { class: "muted", text: t("qa.no_scorecards") }));
    return;
  }
  $("score-items").replaceChildren(
    ...card.items.map((item) =>
      el(
        "label",
        { class: "score-item", title: item.description },
        el("span", {
          text: t("qa.item_label", {
            label: item.label,
            max: formatNumber(item.max, 1),
            weight: formatNumber(item.weight, 2),
          }) + (item.fatal ? ` · ${t("qa.fatal")}` : ""),
        }),
        el("input", {
          type: "number", min: "0", max: String(item.max), step: "any", required: true,
          name: `item:${item.key}`, testid: `score-item-${item.key}`, "data-key": item.key,
        }),
      ),
    ),
  );
}

async function loadScorecards() {
  scorecards = await api("GET", "/api/v1/qa/scorecards");
  $("scorecard-select").replaceChildren(
    ...scorecards.map((card) =>
      el("option", { value: card.ref, text: `${card.title || card.name} (${card.ref})` }),
    ),
  );
  renderScorecard();
}

async function submitScore() {
  if (selected === null) throw new Error(t("qa.choose_call"));
  const answers = {};
  for (const input of $("score-items").querySelectorAll("input[data-key]")) {
    answers[input.dataset.key] = Number(input.value);
  }
  const comment = $("score-comment").value.trim();
  const body = { call_id: selected, scorecard: $("scorecard-select").value, answers };
  if (comment) body.comment = comment;
  const result = await api("POST", "/api/v1/qa/scores", body);
  $("score-result").dataset.score = String(result.score);
  $("score-result").textContent =
    t("qa.scored", { score: formatNumber(result.score, 1) }) +
    (result.failed ? ` · ${t("qa.failed")}` : "");
  $("score-form").reset();
  renderScorecard();
  await select(selected); // the CDR now carries the score
  await search();
  await loadQueue();
}

async function loadQueue() {
  const items = await api("GET", "/api/v1/qa/queue");
  $("queue-empty").hidden = items.length > 0;
  $("queue-list").replaceChildren(
    ...items.map((item) =>
      el(
        "li",
        {},
        el("button", {
          type: "button",
          class: "link",
          testid: "queue-item",
          "data-call-id": item.call_id,
          text: t("qa.queue_entry", {
            agent: item.agent ?? "",
            campaign: item.campaign ?? "",
            time: formatDateTime(item.created_at_ms),
            talk: formatDuration(item.talk_ms),
          }),
          onclick: () => attempt(() => select(item.call_id)),
        }),
      ),
    ),
  );
}

function wire() {
  $("filter-outcome").replaceChildren(
    el("option", { value: "", text: t("qa.any") }),
    ...OUTCOMES.map((code) => el("option", { value: code, text: label("outcome", code) })),
  );
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    offset = 0;
    attempt(search);
  });
  $("page-prev").addEventListener("click", () => {
    offset = Math.max(0, offset - PAGE_SIZE);
    attempt(search);
  });
  $("page-next").addEventListener("click", () => {
    offset += PAGE_SIZE;
    attempt(search);
  });
  $("scorecard-select").addEventListener("change", renderScorecard);
  $("score-form").addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(submitScore);
  });
  $("queue-refresh").addEventListener("click", () => attempt(loadQueue));
  const audio = $("player-audio");
  for (const name of ["timeupdate", "seeked", "loadedmetadata"]) {
    audio.addEventListener(name, position);
  }
  waveform = new Waveform($("waveform"), audio, {
    agent: t("qa.track_agent"),
    customer: t("qa.track_customer"),
  });
  waveform.draw();
}

async function main() {
  const user = await startPage({ roles: ["qa", "supervisor", "admin"], titleKey: "qa.title" });
  if (user === null) return;
  wire();
  await attempt(() => Promise.all([search(), loadScorecards(), loadQueue()]));
  const wanted = new URLSearchParams(window.location.hash.slice(1)).get("call");
  if (wanted) await attempt(() => select(wanted));
}

main();
