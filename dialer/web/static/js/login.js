// Sign-in: username and password for a session; then the page of the user's role.

import { api } from "./api.js";
import { LOCALES, guessLocale, loadLocale, t } from "./i18n.js";
import { attempt, el, homeOf } from "./page.js";

function destination(user) {
  const next = new URLSearchParams(window.location.search).get("next");
  // Only a path of this site: never forward to another origin.
  if (next && next.startsWith("/") && !next.startsWith("//") && next !== "/login") return next;
  return homeOf(user.role);
}

function switcher() {
  const select = document.querySelector("[data-testid=locale-switch]");
  select.replaceChildren(
    ...LOCALES.map((code) => {
      const option = el("option", { value: code, text: t(`locale.${code}`) });
      option.selected = code === document.documentElement.lang;
      return option;
    }),
  );
  select.onchange = async () => {
    await loadLocale(select.value);
    switcher();
  };
}

async function main() {
  await loadLocale(guessLocale());
  switcher();
  try {
    const user = await api("GET", "/api/v1/me");
    window.location.replace(destination(user));
    return;
  } catch {
    // not signed in: the form is the way in
  }
  const form = document.querySelector("[data-testid=login-form]");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    attempt(async () => {
      const session = await api("POST", "/api/v1/session", {
        username: String(data.get("username") ?? ""),
        password: String(data.get("password") ?? ""),
      });
      window.location.assign(destination(session.user));
    }).finally(() => {
      button.disabled = false;
    });
  });
  document.body.dataset.ready = "true";
}

main();
