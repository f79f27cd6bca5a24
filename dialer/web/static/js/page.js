// What every signed-in page shares: who is signed in, the header bar
// (name, role, language switcher, sign-out), errors, and the live stream.

import { api } from "./api.js";
import { LOCALES, label, loadLocale, t } from "./i18n.js";

const HOME = { agent: "/desk", qa: "/qa", supervisor: "/wallboard", admin: "/wallboard" };

export function homeOf(role) {
  return HOME[role] ?? "/login";
}

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name === "style") node.style.cssText = value; // CSSOM: allowed by the page's CSP
    else if (name === "testid") node.dataset.testid = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

// Show what went wrong: the server's message (in the user's language) and its details.
export function showError(error) {
  const box = document.querySelector("[data-testid=error]");
  if (!box) return;
  box.replaceChildren();
  if (!error) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  box.append(el("p", { text: error.message || String(error), testid: "error-message" }));
  const details = Array.isArray(error.details) ? error.details : [];
  if (details.length) box.append(el("ul", {}, ...details.map((d) => el("li", { text: d }))));
}

// Run an action, showing its failure (and clearing an earlier one on success).
export async function attempt(action) {
  try {
    const result = await action();
    showError(null);
    return result;
  } catch (error) {
    showError(error);
    return undefined;
  }
}

function localeSwitcher(user) {
  const select = el("select", {
    testid: "locale-switch",
    "data-i18n-aria-label": "header.language",
    "aria-label": t("header.language"),
  });
  for (const code of LOCALES) {
    const option = el("option", { value: code, text: t(`locale.${code}`) });
    option.selected = code === user.locale;
    select.append(option);
  }
  select.addEventListener("change", () =>
    attempt(async () => {
      await api("PATCH", "/api/v1/me", { locale: select.value });
      // Everything on the page (and what the server renders) changes language.
      window.location.reload();
    }),
  );
  return select;
}

function header(user, titleKey) {
  const bar = document.querySelector("header.bar");
  bar.replaceChildren(
    el("h1", { "data-i18n": titleKey, text: t(titleKey) }),
    el(
      "div",
      { class: "who" },
      el("span", { testid: "user-name", text: user.name }),
      el("span", { class: "role", testid: "user-role", text: label("role", user.role) }),
      localeSwitcher(user),
      el("button", {
        type: "button",
        testid: "sign-out",
        "data-i18n": "header.sign_out",
        text: t("header.sign_out"),
        onclick: () =>
          attempt(async () => {
            await api("DELETE", "/api/v1/session");
            window.location.assign("/login");
          }),
      }),
    ),
  );
}

// Sign-in check, translations and header; the user, or null when this page is not theirs.
export async function startPage({ roles, titleKey }) {
  let user;
  try {
    user = await api("GET", "/api/v1/me");
  } catch (error) {
    if (error.status === 401) {
      window.location.replace(`/login?next=${encodeURIComponent(window.location.pathname)}`);
      return null;
    }
    await loadLocale(undefined);
    showError(error);
    return null;
  }
  await loadLocale(user.locale);
  header(user, titleKey);
  if (!roles.includes(user.role)) {
    const main = document.querySelector("main");
    main.replaceChildren(
      el(
        "p",
        { class: "notice", testid: "wrong-page" },
        t("page.not_for_role", { role: label("role", user.role) }),
        " ",
        el("a", { href: homeOf(user.role), text: t("page.go_home") }),
      ),
    );
    return null;
  }
  document.body.dataset.ready = "true";
  return user;
}

// The server's live events; handlers by event name. Shows the connection's state.
export function liveEvents(handlers, onReconnect) {
  const status = document.querySelector("[data-testid=live-status]");
  const show = (key) => {
    if (!status) return;
    status.dataset.state = key;
    status.dataset.i18n = `live.${key}`;
    status.textContent = t(`live.${key}`);
  };
  show("connecting");
  const source = new EventSource("/api/v1/events");
  let wasOpen = false;
  source.addEventListener("open", () => {
    show("open");
    if (wasOpen && onReconnect) onReconnect();
    wasOpen = true;
  });
  source.addEventListener("error", () => show("reconnecting"));
  for (const [name, handler] of Object.entries(handlers)) {
    source.addEventListener(name, (event) => {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        return; // a torn frame; the next one heals it
      }
      handler(data);
    });
  }
  return source;
}

export function every(seconds, tick) {
  tick();
  return window.setInterval(tick, seconds * 1000);
}
