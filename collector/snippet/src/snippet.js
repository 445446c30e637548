// salewatch page-speed snippet: Core Web Vitals from `web-vitals`, beaconed to the collector.
//
// Config (read at send time, so a shop may fill in ids after the script loaded), from the
// script tag's data- attributes, overriding `window.salewatchVitals`:
//   data-endpoint / endpoint        collector URL, e.g. https://rum.example.com/beacon
//   data-page-type / pageType       home, search, list, detail, cart, checkout, pay_result
//   data-channel / channel          web, h5, ... (default "web")
//   data-session-id / sessionId     the shop's own session id (so the funnel joins up)
//   data-user-id / userId           logged-in or device id
//   data-item-id, data-category, data-traffic-source   optional, passed through
// Without a session or user id the snippet makes its own (sessionStorage / localStorage).
//
// Metrics are queued per page load and sent in one `navigator.sendBeacon` when the page is
// hidden or unloaded — the moment web-vitals finalises LCP, CLS and INP. The body is sent as
// a string (Content-Type text/plain), which needs no CORS preflight.
import { onCLS, onINP, onLCP, onTTFB } from 'web-vitals';

const KEYS = {
  endpoint: 'endpoint',
  page_type: 'pageType',
  channel: 'channel',
  session_id: 'sessionId',
  user_id: 'userId',
  item_id: 'itemId',
  category: 'category',
  traffic_source: 'trafficSource',
};

const script = document.currentScript;

function randomId(prefix) {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
}

function stored(storage, key, prefix) {
  try {
    let value = storage.getItem(key);
    if (!value) {
      value = randomId(prefix);
      storage.setItem(key, value);
    }
    return value;
  } catch (e) {
    return randomId(prefix); // storage blocked: one id per page load is the best we can do
  }
}

function config() {
  const global = window.salewatchVitals || {};
  const data = (script && script.dataset) || {};
  const out = {};
  for (const [field, key] of Object.entries(KEYS)) {
    const value = data[key] != null ? data[key] : global[key];
    if (value != null && value !== '') out[field] = String(value);
  }
  out.channel = out.channel || 'web';
  out.page_type = out.page_type || 'other';
  out.session_id = out.session_id || stored(sessionStorage, 'salewatch_sid', 's');
  out.user_id = out.user_id || stored(localStorage, 'salewatch_uid', 'd');
  return out;
}

let pageLoadId = randomId('pl');
let queue = {}; // metric name -> latest report of this page load

function flush() {
  const metrics = Object.values(queue);
  if (!metrics.length) return;
  queue = {};
  const { endpoint, ...fields } = config();
  if (!endpoint) return;
  const body = JSON.stringify({ page_load_id: pageLoadId, ...fields, metrics });
  if (!(navigator.sendBeacon && navigator.sendBeacon(endpoint, body))) {
    fetch(endpoint, { method: 'POST', body, keepalive: true, mode: 'no-cors' }).catch(() => {});
  }
}

function report(metric) {
  const { name, value, id, rating, delta, navigationType } = metric;
  queue[name] = { name, value, id, rating, delta, navigationType };
}

onTTFB(report);
onLCP(report);
onINP(report);
onCLS(report);

// bubble phase on window: runs after web-vitals' capture-phase listeners have reported
addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'hidden') flush();
});
addEventListener('pagehide', flush);
// a page restored from the back/forward cache is a new page load with new metrics
addEventListener('pageshow', (event) => {
  if (event.persisted) pageLoadId = randomId('pl');
});
