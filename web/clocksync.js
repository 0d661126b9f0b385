// The site's clocks in a browser, and the browser itself as a Cristian client.
//
// The page connects to the broker over MQTT WebSockets (MQTT.js, vendor/mqtt.min.js), by
// default the listener that served it (Mosquitto's http_dir), or ?broker=ws://host:port;
// the site is ?site=NAME (default manipal-foodie), its own name ?name=NAME (default a
// random browser-…).  It shows every participant's status,
// the leader and each round's spread, and asks the site's time servers (a Berkeley master
// is one) for the time: MQTT 5 Response Topic and Correlation Data, its send time echoed
// back.  Of each burst of SAMPLES exchanges it keeps the lowest-delay one: the browser's
// offset from the site's time, and an error bound that holds whatever the delays were.
"use strict";

const params = new URLSearchParams(location.search);
const site = params.get("site") || "manipal-foodie";
const secure = location.protocol === "https:";
const brokerUrl = params.get("broker") || `${secure ? "wss" : "ws"}://${location.host}`;
const prefix = `clocksync/${site}`;
const topics = {
  statuses: `${prefix}/nodes/+/status`,
  round: `${prefix}/berkeley/round`,
  leader: `${prefix}/berkeley/leader`,
  request: `${prefix}/cristian/request`,
};
const name = params.get("name") || `browser-${hex(crypto.getRandomValues(new Uint8Array(4)))}`;
topics.reply = `${prefix}/cristian/reply/${name}`;

const SAMPLES = 8;
const BURST_EVERY_MS = 2000;
const SPACING_MS = 40;
const TIMEOUT_MS = 1000;
const BROWSER_PPM = 100; // how far this host's clock may run from true time
// Browsers coarsen performance.now(): each of t1 and t4 may be off by this much.
const GRANULARITY_MS = self.crossOriginIsolated ? 0.005 : 0.1;
const CHART_ROUNDS = 60;

const state = {
  statuses: new Map(),
  round: null,
  leader: null,
  best: null, // {offsetMs, boundMs, rttMs, atMs, serverPpm, server}
  samples: 0,
  pending: new Map(), // correlation (hex) -> {t1, echo}, on this browser's clock
  burst: [],
};

function hex(bytes) {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

// This browser's clock, in ms since the epoch, sub-millisecond: the wall clock at the
// page's start plus the monotonic clock since.
function clockMs() {
  return performance.timeOrigin + performance.now();
}

// An RFC 3339 time with up to nine fraction digits, as ms since the epoch.  Times come
// back re-formatted, so they are parsed, never compared as strings.
function parseTime(text) {
  const match = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/i.exec(text);
  if (!match) throw new Error(`not an RFC 3339 time: ${text}`);
  const whole = Date.parse(match[1] + match[3].toUpperCase());
  return whole + Number((match[2] || "").padEnd(9, "0")) / 1e6;
}

function formatTime(ms) {
  const whole = Math.floor(ms / 1000);
  const ns = Math.min(999999999, Math.round((ms - whole * 1000) * 1e6));
  return `${new Date(whole * 1000).toISOString().slice(0, 19)}.${String(ns).padStart(9, "0")}Z`;
}

function clockText(ms) {
  return new Date(ms).toISOString().slice(11, 23);
}

function duration(seconds, sign = true) {
  if (typeof seconds !== "number") return "-";
  const plus = sign && seconds >= 0 ? "+" : "";
  const magnitude = Math.abs(seconds);
  if (magnitude < 1e-3) return `${plus}${(seconds * 1e6).toFixed(1)} µs`;
  if (magnitude < 1) return `${plus}${(seconds * 1e3).toFixed(2)} ms`;
  return `${plus}${seconds.toFixed(3)} s`;
}

// MQTT.js writes a publish to the WebSocket a few milliseconds after `publish()` returns
// at times (its stream is flushed from a later task), which would make t1, read before the
// call, early by as much and bias the offset by half of it.  So each request's t1 is read
// again just before the WebSocket send that carries it: still before the send, closer.
const sendWebSocket = WebSocket.prototype.send;
let awaitingSend = null; // the correlation of a request published but not yet sent
WebSocket.prototype.send = function send(data) {
  if (awaitingSend !== null && state.pending.has(awaitingSend)) {
    state.pending.get(awaitingSend).t1 = clockMs();
  }
  awaitingSend = null;
  return sendWebSocket.call(this, data);
};

const client = mqtt.connect(brokerUrl, {
  protocolVersion: 5,
  clientId: `clocksync-${site}-${name}`,
  clean: true,
  reconnectPeriod: 1000,
  connectTimeout: 5000,
});

client.on("connect", () => {
  setConnection("connected", `connected to ${brokerUrl} as ${name}`);
  client.subscribe([topics.statuses, topics.round, topics.leader, topics.reply], { qos: 0 }, burst);
});
client.on("offline", () => setConnection("offline", `no broker at ${brokerUrl}; retrying`));
client.on("error", (error) => setConnection("offline", `${brokerUrl}: ${error.message}`));

client.on("message", (topic, payload, packet) => {
  const arrivedMs = clockMs(); // t4, read first: a late t4 only widens the bound
  let message;
  try {
    message = payload.length ? JSON.parse(new TextDecoder().decode(payload)) : null;
  } catch (error) {
    console.warn(`dropped a malformed message on ${topic}`);
    return;
  }
  if (topic === topics.reply) answer(message, packet, arrivedMs);
  else if (topic === topics.round) state.round = message;
  else if (topic === topics.leader) state.leader = message;
  else {
    const participant = topic.split("/")[3];
    if (message && message.name === participant) state.statuses.set(participant, message);
    else state.statuses.delete(participant);
  }
  if (topic === topics.round && message) chartRound(message);
});

function setConnection(which, text) {
  const element = document.getElementById("connection");
  element.dataset.state = which;
  element.textContent = text;
}

// One exchange: t1 is read just before the publish (early, never late).
function ask() {
  if (!client.connected) return;
  const correlation = crypto.getRandomValues(new Uint8Array(16));
  const stamped = clockMs();
  state.pending.set(hex(correlation), { t1: stamped, echo: stamped });
  const request = { v: 1, type: "time-request", client: name, sent: formatTime(stamped) };
  awaitingSend = hex(correlation);
  client.publish(topics.request, JSON.stringify(request), {
    qos: 0,
    properties: {
      responseTopic: topics.reply,
      correlationData: correlation,
      messageExpiryInterval: 5,
    },
  });
  setTimeout(() => state.pending.delete(hex(correlation)), TIMEOUT_MS);
}

function answer(response, packet, t4) {
  if (!response || response.type !== "time-response") return;
  const property = packet.properties && packet.properties.correlationData;
  const correlation = response.correlation || (property ? hex(property) : "");
  const request = state.pending.get(correlation);
  if (request === undefined) {
    console.warn("dropped a time response that answers no outstanding request");
    return;
  }
  state.pending.delete(correlation);
  const t1 = request.t1;
  let t2, t3, echo;
  try {
    [t2, t3, echo] = [parseTime(response.received), parseTime(response.sent), parseTime(response.echo)];
  } catch (error) {
    console.warn(`dropped a time response: ${error.message}`);
    return;
  }
  if (Math.abs(echo - request.echo) > 0.001 || t3 < t2 || t4 < t1) {
    console.warn("dropped a time response whose echo or times do not fit the request");
    return;
  }
  const rttMs = t4 - t1;
  const delayMs = rttMs - (t3 - t2);
  const serverPpm = Number(response.rate_ppm) || 0;
  state.burst.push({
    offsetMs: (t2 - t1 + (t3 - t4)) / 2,
    boundMs: delayMs / 2 + GRANULARITY_MS + (serverPpm + BROWSER_PPM) * 1e-6 * rttMs,
    rttMs,
    delayMs,
    atMs: t4,
    serverPpm,
    server: response.server,
  });
}

function burst() {
  state.burst = [];
  for (let sample = 0; sample < SAMPLES; sample++) setTimeout(ask, sample * SPACING_MS);
  setTimeout(() => {
    if (!state.burst.length) return;
    state.best = state.burst.reduce((best, sample) => (sample.delayMs < best.delayMs ? sample : best));
    state.samples = state.burst.length;
  }, SAMPLES * SPACING_MS + TIMEOUT_MS);
}

// The latest burst's best exchange: the offset and its bound at the moment its answer
// arrived (`atMs`).  A time server states how fast its clock may slew (rate_ppm: a master
// slewing a correction in, up to tens of thousands of ppm), so the bound is not grown with
// the time since: it is the bound as of that exchange, and the next burst renews it.
function estimate() {
  return state.best;
}

const chart = new Chart(document.getElementById("spread-chart"), {
  type: "line",
  data: { labels: [], datasets: [{ label: "spread (µs)", data: [], borderColor: "#2563eb", tension: 0.2 }] },
  options: {
    animation: false,
    scales: { y: { type: "logarithmic", title: { display: true, text: "µs" } }, x: { title: { display: true, text: "round" } } },
  },
});

function chartRound(round) {
  const labels = chart.data.labels;
  if (labels.length && labels[labels.length - 1] === round.round) return;
  labels.push(round.round);
  chart.data.datasets[0].data.push(Math.max(0.1, round.spread_s * 1e6));
  if (labels.length > CHART_ROUNDS) {
    labels.shift();
    chart.data.datasets[0].data.shift();
  }
  chart.update();
}

function card(participant) {
  let element = document.querySelector(`.clock[data-name="${CSS.escape(participant)}"]`);
  if (!element) {
    element = document.getElementById("clock-card").content.firstElementChild.cloneNode(true);
    element.dataset.name = participant;
    element.querySelector(".name").textContent = participant;
    const cards = document.getElementById("clocks");
    const after = Array.from(cards.children).find((other) => other.dataset.name > participant);
    cards.insertBefore(element, after || null);
  }
  return element;
}

// Each participant's clock: the site's time plus its offset from the master as the latest
// round measured it (a fleet node or a Cristian device: the site's time, within its bound).
function render() {
  const now = estimate();
  const siteMs = now ? clockMs() + now.offsetMs : null;
  document.getElementById("site").textContent = site;
  const round = state.round;
  const leader = state.leader ? state.leader.leader : null;
  document.getElementById("leader").textContent = leader || "-";
  document.getElementById("term").textContent = state.leader ? state.leader.epoch : "-";
  document.getElementById("round").textContent = round ? round.round : "-";
  document.getElementById("spread").textContent = round ? duration(round.spread_s, false) : "-";
  const browser = document.getElementById("browser");
  if (now) {
    document.getElementById("site-time").textContent = clockText(siteMs);
    document.getElementById("browser-offset").textContent = duration(now.offsetMs / 1000);
    document.getElementById("browser-bound").textContent = duration(now.boundMs / 1000, false);
    document.getElementById("browser-rtt").textContent = duration(now.rttMs / 1000, false);
    document.getElementById("browser-samples").textContent = state.samples;
    document.getElementById("server").textContent = now.server;
    browser.dataset.offsetS = now.offsetMs / 1000;
    browser.dataset.boundS = now.boundMs / 1000;
    browser.dataset.samples = state.samples;
  }
  const measured = new Map((round ? round.participants : []).map((entry) => [entry.name, entry]));
  for (const element of document.querySelectorAll(".clock")) {
    if (!state.statuses.has(element.dataset.name)) element.remove();
  }
  for (const [participant, status] of state.statuses) {
    const element = card(participant);
    const entry = measured.get(participant);
    const offsetS = entry ? entry.offset_s : 0;
    element.dataset.state = status.state;
    element.dataset.leader = String(participant === leader);
    element.querySelector(".time").textContent = siteMs === null ? "--:--:--.---" : clockText(siteMs + offsetS * 1000);
    const parts = [`${status.role} · ${status.sync}`, status.state];
    if (entry) parts.push(`offset ${duration(entry.offset_s)}${entry.excluded ? " (left out)" : ""}`);
    if (typeof status.error_bound_s === "number") parts.push(`bound ±${duration(status.error_bound_s, false)}`);
    element.querySelector(".detail").textContent = parts.join(" · ");
  }
}

// How far this page's clock is from the host's: Date.now() counts whole milliseconds, so
// the difference is read just after it ticks over, a few times, and the least kept.
function clockMinusHostMs() {
  let least = Infinity;
  for (let tick = 0; tick < 5; tick++) {
    const before = Date.now();
    let now;
    do now = Date.now(); while (now === before);
    least = Math.min(least, clockMs() - now);
  }
  return least;
}

// What the browser test reads: the estimate, the clocks shown, and how far this page's
// clock is from the host's (the truth signal is the host's clock).
window.clocksync = {
  snapshot() {
    const now = estimate();
    return {
      name,
      connected: client.connected,
      offsetS: now ? now.offsetMs / 1000 : null,
      boundS: now ? now.boundMs / 1000 : null,
      atMs: now ? now.atMs : null,
      server: now ? now.server : null,
      samples: state.samples,
      clockMinusHostMs: clockMinusHostMs(),
      clocks: Object.fromEntries(
        Array.from(document.querySelectorAll(".clock"), (element) => [
          element.dataset.name,
          element.querySelector(".time").textContent,
        ]),
      ),
    };
  },
};

burst();
setInterval(burst, BURST_EVERY_MS);
setInterval(render, 50);
