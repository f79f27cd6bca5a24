// Translations and locale-aware formatting for every page.
//
// The strings live in /static/i18n/<locale>.json; an element shows a string by
// naming its key: data-i18n (text), data-i18n-placeholder, data-i18n-title,
// data-i18n-aria-label. Dates, numbers and percentages go through Intl in the
// same locale, so a page never mixes two languages.

export const LOCALES = ["zh-CN", "en"];
export const DEFAULT_LOCALE = "zh-CN";
const STORED = "dialer.locale";

let current = DEFAULT_LOCALE;
let strings = {};

export function locale() {
  return current;
}

// Before sign-in: what this browser chose last, else its language, else Chinese.
export function guessLocale() {
  const stored = window.localStorage.getItem(STORED);
  if (LOCALES.includes(stored)) return stored;
  const wanted = (navigator.language || "").toLowerCase();
  return wanted.startsWith("en") ? "en" : DEFAULT_LOCALE;
}

export async function loadLocale(wanted) {
  const chosen = LOCALES.includes(wanted) ? wanted : DEFAULT_LOCALE;
  const response = await fetch(`/static/i18n/${chosen}.json`, { cache: "no-cache" });
  if (!response.ok) throw new Error(`translations for ${chosen}: HTTP ${response.status}`);
  strings = await response.json();
  current = chosen;
  window.localStorage.setItem(STORED, chosen);
  document.documentElement.lang = chosen;
  translate(document);
}

// A string in the current locale; {name} placeholders filled from params.
export function t(key, params = {}) {
  const found = Object.prototype.hasOwnProperty.call(strings, key) ? strings[key] : key;
  return found.replace(/\{(\w+)\}/g, (whole, name) =>
    Object.prototype.hasOwnProperty.call(params, name) ? String(params[name]) : whole,
  );
}

// A label for a code the server sends (state, outcome, ...), the code itself if unknown.
export function label(prefix, code) {
  const key = `${prefix}.${code}`;
  return Object.prototype.hasOwnProperty.call(strings, key) ? strings[key] : String(code);
}

const ATTRIBUTES = [
  ["i18nPlaceholder", "placeholder"],
  ["i18nTitle", "title"],
  ["i18nAriaLabel", "aria-label"],
];

export function translate(root) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const [data, attribute] of ATTRIBUTES) {
    const selector = `[data-${data.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}]`;
    for (const el of root.querySelectorAll(selector)) el.setAttribute(attribute, t(el.dataset[data]));
  }
  const title = document.querySelector("title[data-i18n]");
  if (title) document.title = t(title.dataset.i18n);
}

export function formatDateTime(ms) {
  if (ms === null || ms === undefined) return "";
  return new Intl.DateTimeFormat(current, { dateStyle: "short", timeStyle: "medium" }).format(
    new Date(ms),
  );
}

export function formatTime(ms) {
  if (ms === null || ms === undefined) return "";
  return new Intl.DateTimeFormat(current, { timeStyle: "medium" }).format(new Date(ms));
}

export function formatNumber(value, fractionDigits = 0) {
  return new Intl.NumberFormat(current, {
    maximumFractionDigits: fractionDigits,
    minimumFractionDigits: 0,
  }).format(value);
}

// A fraction (0.031) as a percentage in the locale ("3.1%").
export function formatFraction(value) {
  return new Intl.NumberFormat(current, { style: "percent", maximumFractionDigits: 1 }).format(
    value,
  );
}

// A duration in milliseconds as h:mm:ss (m:ss under an hour), digits in the locale.
export function formatDuration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const two = new Intl.NumberFormat(current, { minimumIntegerDigits: 2, useGrouping: false });
  const one = new Intl.NumberFormat(current, { useGrouping: false });
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  if (hours > 0) return `${one.format(hours)}:${two.format(minutes)}:${two.format(seconds)}`;
  return `${one.format(minutes)}:${two.format(seconds)}`;
}
