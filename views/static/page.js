// The live page: place an order and watch it, the cluster's partition map, the
// inventory, and a call to any service. Plain ES2020 modules, no framework; every
// request goes to the node that served the page, through the public API.

import { partitionFor } from "./partitioner.js";
import { SseParser } from "./sse.js";

const NODE_HEADER = "X-Stategate-Node";
const TERMINAL = new Set(["VALIDATED", "FAILED"]);
const LONG_POLL_SECONDS = 25;
const MAX_RECONNECTS = 5;

const $ = (id) => document.getElementById(id);

let cluster = null; // the last answer of GET /v1/cluster
let watching = null; // the AbortController of the order being watched

// ---------------------------------------------------------------- small helpers

function timeStamp() {
  const now = new Date();
  const pad = (n, width = 2) => String(n).padStart(width, "0");
  return `${pad(now.getHours())}:${pad(now.getMinutes())}:${pad(now.getSeconds())}.${pad(now.getMilliseconds(), 3)}`;
}

function nodeOf(response) {
  return response.headers.get(NODE_HEADER) || "?";
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.append(td);
  return td;
}

async function bodyOf(response) {
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

// What went wrong, in one line: a problem document's detail, or the status.
function problemText(response, body) {
  const detail = body && typeof body === "object" ? body.detail || body.title : "";
  return `${response.status} ${response.statusText}${detail ? `: ${detail}` : ""}`;
}

function pretty(body) {
  return typeof body === "string" ? body : JSON.stringify(body, null, 2);
}

function delay(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function retryAfterMs(response) {
  const seconds = Number(response.headers.get("Retry-After"));
  return Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds, 10) * 1000 : 1000;
}

// ---------------------------------------------------------------- cluster

async function loadCluster() {
  try {
    const response = await fetch("/v1/cluster", { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(problemText(response, await bodyOf(response)));
    cluster = await response.json();
    $("page-node").textContent = cluster.self;
  } catch (error) {
    $("cluster-summary").textContent = `Could not read the partition map: ${error.message}`;
    return;
  }
  renderCluster(currentOrderId());
}

// The partition count of orders: the cluster map says it (older nodes did not: then one
// more than the highest partition any node owns or holds).
function partitionCount(map) {
  if (map.partitions) return map.partitions;
  const numbers = map.nodes.flatMap((node) => node.partitions);
  if (map.view) numbers.push(...map.view.active, ...map.view.standby);
  return numbers.length ? Math.max(...numbers) + 1 : 0;
}

function ownerOf(orderId) {
  if (!cluster || !orderId) return null;
  const count = partitionCount(cluster);
  if (!count) return null;
  const partition = partitionFor(orderId, count);
  const node = cluster.nodes.find((n) => n.partitions.includes(partition));
  return { partition, count, node };
}

function renderCluster(orderId) {
  if (!cluster) return;
  const owner = ownerOf(orderId);
  const rows = cluster.nodes.map((node) => clusterRow(node, owner));
  $("cluster-rows").replaceChildren(...rows);
  const count = partitionCount(cluster);
  $("cluster-summary").textContent =
    `${cluster.nodes.length} node(s), ${count} partition(s) of orders; this page's node is ${cluster.self}.`;
  renderOwner(orderId, owner);
}

function clusterRow(node, owner) {
  const row = document.createElement("tr");
  cell(row, node.id === cluster.self ? `${node.id} (this page)` : node.id);
  cell(row, node.url);
  cell(row, node.partitions.join(", ") || "none");
  cell(row, node.answers === false ? "no" : "yes");
  const owns = owner && owner.node && owner.node.url === node.url;
  cell(row, owns ? `owns it (partition ${owner.partition})` : "", owns ? "owner" : "");
  return row;
}

function renderOwner(orderId, owner) {
  if (!orderId) return;
  $("progress-owner").textContent = owner
    ? `Order ${orderId} hashes to partition ${owner.partition} of ${owner.count}, ` +
      `owned by ${owner.node ? owner.node.id : "no node right now"}.`
    : `Order ${orderId}: the partition map is not known yet.`;
}

// ---------------------------------------------------------------- order progress

function currentOrderId() {
  return $("progress-table").dataset.orderId || "";
}

function startProgress(orderId) {
  $("progress-table").dataset.orderId = orderId;
  $("progress-rows").replaceChildren();
  renderCluster(orderId);
}

function announce(text) {
  $("progress-status").textContent = text;
}

function validationsText(validations) {
  const entries = Object.entries(validations || {}).sort(([a], [b]) => a.localeCompare(b));
  return entries.length ? entries.map(([check, result]) => `${check}: ${result}`).join(", ") : "none yet";
}

function showStep(step, order, node) {
  const row = document.createElement("tr");
  cell(row, timeStamp(), "nowrap");
  cell(row, step);
  cell(row, order.state, `state state-${order.state}`);
  cell(row, String(order.version));
  cell(row, validationsText(order.validations));
  cell(row, node, "nowrap");
  $("progress-rows").append(row);
  announce(`Order ${order.id} is ${order.state} (version ${order.version}, from ${node}).`);
}

function showNote(step, text, node = "") {
  const row = document.createElement("tr");
  cell(row, timeStamp(), "nowrap");
  cell(row, step);
  const note = cell(row, text, "note");
  note.colSpan = 3;
  cell(row, node, "nowrap");
  $("progress-rows").append(row);
}

// ---------------------------------------------------------------- placing an order

function orderBody(form) {
  const data = new FormData(form);
  return {
    customer_id: String(data.get("customer_id")).trim(),
    product: String(data.get("product")).trim(),
    quantity: Number(data.get("quantity")),
    price: Number(data.get("price")),
  };
}

async function placeOrder(event) {
  event.preventDefault();
  $("order-error").textContent = "";
  if (watching) watching.abort();
  watching = new AbortController();
  const signal = watching.signal;
  announce("Placing the order…");
  let response;
  try {
    response = await fetch("/v1/orders", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(orderBody(event.target)),
      signal,
    });
  } catch (error) {
    failPlacing(`The node did not answer: ${error.message}`);
    return;
  }
  const body = await bodyOf(response);
  if (!response.ok || typeof body !== "object") {
    failPlacing(`Not placed: ${problemText(response, body)}`);
    return;
  }
  startProgress(body.id);
  showStep(`POST /v1/orders → ${response.status}`, body, nodeOf(response));
  loadCluster(); // who owns the order now, beside the steps
  if (!TERMINAL.has(body.state)) await watchOrder(body.id, signal);
}

function failPlacing(text) {
  $("order-error").textContent = text;
  announce(text);
}

// ---------------------------------------------------------------- following an order

async function watchOrder(orderId, signal) {
  try {
    const finished = await followEvents(orderId, signal);
    if (!finished && !signal.aborted) await longPoll(orderId, signal);
  } catch (error) {
    if (!signal.aborted) announce(`Lost track of order ${orderId}: ${error.message}`);
  }
}

// Follows GET /v1/orders/{id}/events. True once a terminal state was shown; false when
// the stream could not be had (then the caller long-polls instead).
async function followEvents(orderId, signal) {
  const url = `/v1/orders/${encodeURIComponent(orderId)}/events`;
  let lastEventId = "";
  for (let attempt = 0; attempt <= MAX_RECONNECTS && !signal.aborted; attempt += 1) {
    const headers = { Accept: "text/event-stream" };
    if (lastEventId) headers["Last-Event-ID"] = lastEventId;
    const response = await fetch(url, { headers, signal, cache: "no-store" });
    if (!isEventStream(response)) {
      showNote("events", `no event stream (${response.status}): long-polling instead`, nodeOf(response));
      await response.body?.cancel();
      return false;
    }
    const outcome = await readStream(response, signal);
    lastEventId = outcome.lastEventId || lastEventId;
    if (outcome.terminal) return true;
    const why = outcome.reconnect ? "the node asked for a reconnect" : "the stream ended early";
    showNote("events", `${why}: reconnecting with Last-Event-ID ${lastEventId || "(none)"}`, nodeOf(response));
    await delay(Math.min(outcome.retryMs ?? attempt * 250, 10_000), signal);
  }
  return false;
}

function isEventStream(response) {
  const type = response.headers.get("Content-Type") || "";
  return response.ok && response.body && type.startsWith("text/event-stream");
}

// Reads one event stream until it ends, a terminal state arrives or the node asks for a reconnect.
async function readStream(response, signal) {
  const node = nodeOf(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let terminal = false;
  let reconnect = false;
  const parser = new SseParser((event) => {
    if (event.event === "reconnect") reconnect = true;
    if (event.event !== "order") return;
    const order = JSON.parse(event.data);
    showStep(`event ${event.id}`, order, node);
    terminal = TERMINAL.has(order.state);
  });
  try {
    while (!terminal && !reconnect && !signal.aborted) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.feed(value);
    }
  } finally {
    reader.cancel().catch(() => {});
  }
  return { terminal, reconnect, lastEventId: parser.lastEventId, retryMs: parser.retryMs };
}

// The fallback: GET /v1/orders/{id}?wait_for=VALIDATED,FAILED until the order is terminal.
async function longPoll(orderId, signal) {
  const url = `/v1/orders/${encodeURIComponent(orderId)}?wait_for=VALIDATED,FAILED&timeout=${LONG_POLL_SECONDS}`;
  while (!signal.aborted) {
    const response = await fetch(url, { headers: { Accept: "application/json" }, signal, cache: "no-store" });
    const body = await bodyOf(response);
    if (response.status === 200 || response.status === 202) {
      showStep(`long-poll → ${response.status}`, body, nodeOf(response));
      if (TERMINAL.has(body.state)) return;
    } else if (response.status !== 503 && response.status !== 404) {
      throw new Error(problemText(response, body));
    }
    await delay(response.status === 200 || response.status === 202 ? 0 : retryAfterMs(response), signal);
  }
}

// ---------------------------------------------------------------- inventory

async function inventory(event) {
  event.preventDefault();
  const data = new FormData(event.target);
  const product = String(data.get("product")).trim();
  const setting = event.submitter && event.submitter.value === "set";
  const url = `/v1/inventory/${encodeURIComponent(product)}`;
  const init = { headers: { Accept: "application/json" } };
  if (setting) {
    init.method = "PUT";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify({ stock: Number(data.get("stock")) });
  }
  $("inventory-status").textContent = setting ? "Setting the stock…" : "Reading the stock…";
  await showAnswer(url, init, $("inventory-status"), $("inventory-body"));
}

// Fetches `url` and shows its status, node and body; an error stays readable too.
async function showAnswer(url, init, statusElement, bodyElement) {
  try {
    const response = await fetch(url, init);
    const body = await bodyOf(response);
    const what = response.ok ? `${response.status} ${response.statusText}` : problemText(response, body);
    statusElement.textContent = `${what} (node ${nodeOf(response)})`;
    bodyElement.textContent = pretty(body);
    return response;
  } catch (error) {
    statusElement.textContent = `No answer: ${error.message}`;
    bodyElement.textContent = "";
    return null;
  }
}

// ---------------------------------------------------------------- service calls

async function callService(event) {
  event.preventDefault();
  const data = new FormData(event.target);
  const method = String(data.get("method"));
  const path = String(data.get("path")).replace(/^\/+/, "");
  const url = `/v1/services/${encodeURIComponent(String(data.get("service")).trim())}/${path}`;
  const init = { method, headers: { "Content-Type": "text/plain" } };
  if (method !== "GET") init.body = String(data.get("body"));
  $("service-status").textContent = `Calling ${method} ${url}…`;
  $("service-headers").textContent = "";
  $("service-response").textContent = "";
  try {
    const response = await fetch(url, init);
    $("service-status").textContent = `${response.status} ${response.statusText} (node ${nodeOf(response)})`;
    $("service-headers").textContent = [...response.headers].map(([k, v]) => `${k}: ${v}`).join("\n");
    await streamText(response, $("service-response"));
  } catch (error) {
    $("service-status").textContent = `No answer: ${error.message}`;
  }
}

// Shows a body as it arrives (a streaming reply comes as NDJSON, one line per record).
async function streamText(response, element) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    element.textContent += value;
  }
}

// ---------------------------------------------------------------- start

function start() {
  $("order-form").addEventListener("submit", placeOrder);
  $("inventory-form").addEventListener("submit", inventory);
  $("service-form").addEventListener("submit", callService);
  $("cluster-refresh").addEventListener("click", loadCluster);
  document.body.dataset.ready = "true";
  loadCluster();
}

start();
