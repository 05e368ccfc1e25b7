// modelreg web console: plain JS, no build step. Talks to the /v1 API with the key the user pasted, kept in
// sessionStorage and sent as the Bearer header (never in a URL or a cookie). Every text from the API goes into
// the page through textContent or SVG text nodes, never as HTML.
"use strict";

const KEY_ITEM = "modelreg.key";
const NAMESPACE_ITEM = "modelreg.namespace";
const PAGE_SIZE = 20;
const POLL_INTERVAL_MS = 2000; // fallback when the registry has no watch stream
const RECONNECT_MS = 2000;
const STATUS_COLOURS = {
  not_deployed: "#7a8494", pending: "#d08b00", deployed: "#1f9d55",
  unhealthy: "#d9480f", failed: "#c92a2a", deleting: "#6b5bd6",
};
const LIST_PARAMS = ["name", "model_format", "task_type", "deployed"];

const $ = (id) => document.getElementById(id);
const statusAfter = JSON.parse(document.body.dataset.statusAfter || "{}");
let features = null; // which optional routes this registry has (from its OpenAPI document)
let live = null; // the current page's live updates: {stop()}
let listOffset = 0;
let navigation = 0; // bumped by every route(): a page whose loads finish after the user moved on stays quiet

// ---- small helpers -------------------------------------------------------------------------------------

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function svg(tag, attributes, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function badge(status) {
  return el("span", { class: `badge status-${status}`, text: status, "data-status": status });
}

function when(value) {
  if (!value) return "";
  const date = new Date(value);
  return isNaN(date) ? String(value) : date.toLocaleString();
}

function errorText(answer) {
  const body = answer.body || {};
  if (body.error && body.error.message) return body.error.message;
  if (Array.isArray(body.detail)) return body.detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
  return `HTTP ${answer.status}`;
}

function show(pageId) {
  for (const page of document.querySelectorAll(".page")) page.hidden = page.id !== pageId;
}

function stopLive() {
  if (live) live.stop();
  live = null;
}

// ---- the API -------------------------------------------------------------------------------------------

const session = {
  get key() { return sessionStorage.getItem(KEY_ITEM); },
  get namespace() { return sessionStorage.getItem(NAMESPACE_ITEM) || "demo"; },
  signIn(key, namespace) { sessionStorage.setItem(KEY_ITEM, key); sessionStorage.setItem(NAMESPACE_ITEM, namespace); },
  signOut() { sessionStorage.removeItem(KEY_ITEM); sessionStorage.removeItem(NAMESPACE_ITEM); },
};

async function api(method, path, body, key) {
  const headers = { Authorization: `Bearer ${key || session.key}`, Accept: "application/json" };
  const init = { method, headers, credentials: "omit", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let parsed = null;
  try { parsed = await response.json(); } catch (_) { parsed = null; }
  if (response.status === 401 && !key) {
    session.signOut();
    $("sign-in-error").textContent = "The registry no longer accepts this key (revoked?): sign in again.";
    location.hash = "#/";
  }
  return { status: response.status, ok: response.ok, body: parsed };
}

const enc = encodeURIComponent;
const modelsPath = (ns) => `/v1/namespaces/${enc(ns)}/models`;
const modelPath = (ns, id) => `${modelsPath(ns)}/${enc(id)}`;

// Optional routes (built on other branches of the registry): detected from the OpenAPI document, and hidden
// again whenever one answers 404/405 anyway.
async function loadFeatures() {
  if (features) return features;
  features = { watch: false, aliases: false, predict: false, clusters: false, filter: false };
  try {
    const response = await fetch("/schema/openapi.json", { credentials: "omit" });
    const paths = (await response.json()).paths || {};
    for (const [path, item] of Object.entries(paths)) {
      if (/\/watch$/.test(path)) features.watch = true;
      if (/\/names\/\{[^}]+\}\/aliases$/.test(path)) features.aliases = true;
      if (/\/models\/\{[^}]+\}\/predict$/.test(path)) features.predict = true;
      if (path === "/v1/clusters") features.clusters = true;
      if (/^\/v1\/namespaces\/\{[^}]+\}\/models$/.test(path) && item.get) {
        features.filter = (item.get.parameters || []).some((p) => p.name === "filter" && p.in === "query");
      }
    }
  } catch (_) { /* no document: only the base routes */ }
  $("nav-clusters").hidden = !features.clusters;
  return features;
}

// ---- live updates: the watch stream (SSE over fetch, so the key stays in a header), else polling --------

function parseSse(onEvent) {
  let buffer = "";
  let event = { type: "message", data: [], id: null };
  return (chunk) => {
    buffer += chunk;
    const lines = buffer.split(/\r\n|\r|\n/);
    buffer = lines.pop();
    for (const line of lines) {
      if (line === "") {
        if (event.data.length) onEvent({ type: event.type, data: event.data.join("\n"), id: event.id });
        event = { type: "message", data: [], id: event.id };
      } else if (!line.startsWith(":")) {
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") event.data.push(value);
        else if (field === "event") event.type = value;
        else if (field === "id") event.id = value;
      }
    }
  };
}

// Calls onModel(model) for every model the stream (or the poll) reports; refresh() re-reads everything.
function follow(streamPath, onModel, refresh) {
  const controller = new AbortController();
  let stopped = false;
  let timer = null;
  let lastEventId = null;
  const indicator = $("live");

  const poll = () => {
    if (indicator) indicator.textContent = "live: polling";
    const tick = async () => {
      if (stopped) return;
      try { await refresh(); } finally { if (!stopped) timer = setTimeout(tick, POLL_INTERVAL_MS); }
    };
    timer = setTimeout(tick, POLL_INTERVAL_MS);
  };

  const stream = async () => {
    if (stopped) return;
    const headers = { Authorization: `Bearer ${session.key}`, Accept: "text/event-stream" };
    if (lastEventId) headers["Last-Event-ID"] = lastEventId;
    let response;
    try {
      response = await fetch(streamPath, { headers, signal: controller.signal, credentials: "omit", cache: "no-store" });
    } catch (_) {
      if (!stopped) timer = setTimeout(stream, RECONNECT_MS);
      return;
    }
    const type = response.headers.get("content-type") || "";
    if (response.status === 401) {
      session.signOut();
      location.hash = "#/";
      return;
    }
    if (!response.ok || !type.startsWith("text/event-stream")) {
      if (response.status === 404 || response.status === 405 || !type.startsWith("text/event-stream")) {
        features.watch = false;
        poll();
      } else if (!stopped) {
        timer = setTimeout(stream, RECONNECT_MS);
      }
      return;
    }
    if (indicator) indicator.textContent = "live: watching";
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    const feed = parseSse((event) => {
      if (event.id) lastEventId = event.id;
      let data = null;
      try { data = JSON.parse(event.data); } catch (_) { return; }
      if (event.type === "snapshot" && Array.isArray(data.models)) data.models.forEach(onModel); // a namespace's
      else if (event.type === "snapshot") onModel(data.model || data);
      else if (event.type === "change") onModel(data.model);
    });
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        feed(value);
      }
    } catch (_) { /* aborted or cut: reconnect below */ }
    if (!stopped) timer = setTimeout(stream, RECONNECT_MS);
  };

  if (streamPath && features && features.watch) stream(); else poll();
  return { stop() { stopped = true; controller.abort(); clearTimeout(timer); } };
}

// ---- sign-in -------------------------------------------------------------------------------------------

async function signIn(event) {
  event.preventDefault();
  const key = $("api-key").value.trim();
  const namespace = $("namespace").value.trim();
  const error = $("sign-in-error");
  error.textContent = "";
  const answer = await api("GET", `${modelsPath(namespace)}?limit=1`, undefined, key);
  if (answer.status === 401) {
    error.textContent = "Wrong API key: the registry did not accept it (unknown, revoked or mistyped).";
  } else if (answer.status === 404) {
    error.textContent = `This key cannot reach the namespace "${namespace}".`;
  } else if (answer.status === 422) {
    error.textContent = `"${namespace}" is not a valid namespace id.`;
  } else if (!answer.ok) {
    error.textContent = `The registry answered ${answer.status}: ${errorText(answer)}`;
  } else {
    session.signIn(key, namespace);
    $("api-key").value = "";
    location.hash = `#/ns/${enc(namespace)}`;
  }
}

// ---- namespace page ------------------------------------------------------------------------------------

// "name = 'x' AND model_format = 'onnx'" → the list route's own parameters, or null if it needs more.
function filterToParams(text) {
  const params = {};
  if (!text.trim()) return params;
  for (const clause of text.split(/\s+AND\s+/i)) {
    const match = clause.trim().match(/^([A-Za-z_.]+)\s*=\s*(?:'([^']*)'|"([^"]*)"|(\S+))$/);
    if (!match || !LIST_PARAMS.includes(match[1])) return null;
    params[match[1]] = match[2] ?? match[3] ?? match[4];
  }
  return params;
}

function modelRow(ns, model) {
  const aliases = (model.aliases || []).map((a) => (typeof a === "string" ? a : a.alias)).join(", ");
  const tags = Object.entries(model.tags || {}).map(([k, v]) => `${k}=${v}`).join(", ");
  const cluster = model.cluster || (model.deployment_info && model.deployment_info.cluster) || "";
  return el("tr", { "data-model-id": model.model_id },
    el("td", {}, el("a", { href: `#/ns/${enc(ns)}/models/${enc(model.model_id)}`, text: model.name })),
    el("td", { text: model.version }),
    el("td", { text: model.model_format }),
    el("td", { class: "status" }, badge(model.deployment_status)),
    el("td", { text: cluster }),
    el("td", { text: aliases }),
    el("td", { text: tags }),
    el("td", { text: when(model.updated_at) }));
}

async function loadList(ns) {
  const text = $("filter").value;
  let params = filterToParams(text);
  const error = $("list-error");
  if (params === null) {
    if (!features.filter) {
      error.textContent = `This registry filters on ${LIST_PARAMS.join(", ")} only (field = 'value' AND …).`;
      return;
    }
    params = { filter: text };
  } else if (features.filter && text.trim()) {
    params = { filter: text };
  }
  const query = new URLSearchParams({ ...params, limit: PAGE_SIZE, offset: listOffset });
  const answer = await api("GET", `${modelsPath(ns)}?${query}`);
  if (!answer.ok) {
    error.textContent = `The list failed (${answer.status}): ${errorText(answer)}`;
    return;
  }
  error.textContent = "";
  const body = answer.body;
  $("models-table").tBodies[0].replaceChildren(...body.models.map((m) => modelRow(ns, m)));
  const last = Math.min(body.offset + body.models.length, body.total);
  $("page-info").textContent = body.total ? `${body.offset + 1}–${last} of ${body.total}` : "no models";
  $("prev-page").disabled = body.offset === 0;
  $("next-page").disabled = body.next_offset === null || body.next_offset === undefined;
  $("next-page").dataset.offset = body.next_offset ?? "";
}

function updateRow(model) {
  const row = document.querySelector(`#models-table tr[data-model-id="${CSS.escape(model.model_id)}"]`);
  if (row) row.querySelector("td.status").replaceChildren(badge(model.deployment_status));
}

async function namespacePage(ns, visit) {
  show("namespace-page");
  $("ns-name").textContent = ns;
  $("filter-help").textContent = features.filter
    ? "Filter language, e.g. model_format = 'onnx' AND tags.team = 'search'."
    : `Filter with ${LIST_PARAMS.join(", ")}: e.g. model_format = 'onnx' AND deployed = true.`;
  await loadList(ns);
  if (visit !== navigation) return;
  live = follow(`/v1/namespaces/${enc(ns)}/watch`, updateRow, () => loadList(ns));
}

// ---- model page ----------------------------------------------------------------------------------------

const DETAIL_FIELDS = [
  "model_id", "namespace_id", "name", "version", "model_format", "framework", "task_type", "deployment_status",
  "deployment_message", "deployed", "deployment_info", "resource_requirements", "input_schema",
  "output_schema", "model_archive_url", "model_hash", "aliases", "tags", "created_at", "updated_at",
];

function renderDetails(model) {
  const rows = [];
  const keys = [...DETAIL_FIELDS, ...Object.keys(model).filter((k) => !DETAIL_FIELDS.includes(k))];
  for (const key of keys) {
    if (!(key in model)) continue;
    const value = model[key];
    let text;
    if (value === null || value === undefined) text = "—";
    else if (key.endsWith("_at")) text = `${when(value)}  (${value})`;
    else if (typeof value === "object") text = JSON.stringify(value, null, 2);
    else text = String(value);
    rows.push(el("dt", { text: key.replaceAll("_", " ") }), el("dd", { text }));
  }
  $("details").replaceChildren(...rows);
}

// The deployment history as a picture: one coloured segment per status on a time axis, from each applied event
// to the next (the last one to now); failures marked, their message in the hover title.
function timelineSegments(events, model, now) {
  const ordered = [...events].sort((a, b) => Date.parse(a.occurred_at) - Date.parse(b.occurred_at));
  const segments = ordered.map((event, i) => ({
    status: statusAfter[event.event_type] || "not_deployed",
    start: Date.parse(event.occurred_at),
    end: i + 1 < ordered.length ? Date.parse(ordered[i + 1].occurred_at) : now,
    event,
  }));
  const requested = model.desired_at ? Date.parse(model.desired_at) : null;
  if (model.deployment_status === "pending" || model.deployment_status === "deleting") {
    const lastStart = segments.length ? segments[segments.length - 1].start : -Infinity;
    if (!segments.length || segments[segments.length - 1].status !== model.deployment_status) {
      const start = requested && requested > lastStart ? requested : Math.max(lastStart, now - 1000);
      if (segments.length) segments[segments.length - 1].end = start;
      segments.push({ status: model.deployment_status, start, end: now, event: null });
    }
  }
  return segments;
}

function drawTimeline(events, model) {
  const now = Date.now();
  const segments = timelineSegments(events, model, now);
  const width = 900, left = 20, right = 20, top = 20, bar = 28;
  const holder = $("timeline");
  if (!segments.length) {
    holder.replaceChildren(el("p", { class: "hint", text: "No deployment yet: deploy the model to start its timeline." }));
    return;
  }
  const start = segments[0].start;
  const span = Math.max(now - start, 1000);
  const x = (t) => left + ((t - start) / span) * (width - left - right);
  const picture = svg("svg", { viewBox: `0 0 ${width} 120`, role: "img", "aria-label": "deployment timeline" });
  segments.forEach((segment, i) => {
    const x0 = x(segment.start);
    const w = Math.max(x(segment.end) - x0, 4);
    const message = segment.event && segment.event.message ? `: ${segment.event.message}` : "";
    const title = `${segment.status} from ${when(segment.start)} to ${i + 1 < segments.length ? when(segment.end) : "now"}${message}`;
    picture.append(svg("rect", {
      x: x0, y: top, width: w, height: bar, fill: STATUS_COLOURS[segment.status] || "#999",
      class: `segment segment-${segment.status}`, "data-status": segment.status,
    }, svg("title", { text: title })));
    if (segment.status === "failed" || segment.status === "unhealthy") {
      picture.append(svg("path", {
        d: `M ${x0} ${top - 2} l -6 -10 l 12 0 z`, fill: STATUS_COLOURS[segment.status], class: "failure-marker",
      }, svg("title", { text: `${segment.status}${message || ": no message"}` })));
    }
  });
  picture.append(svg("line", { x1: left, y1: top + bar + 4, x2: width - right, y2: top + bar + 4, stroke: "#5a6472" }));
  for (let i = 0; i <= 4; i++) {
    const t = start + (span * i) / 4;
    const tx = x(t);
    picture.append(svg("line", { x1: tx, y1: top + bar + 2, x2: tx, y2: top + bar + 8, stroke: "#5a6472" }));
    picture.append(svg("text", {
      x: tx, y: top + bar + 20, class: "axis-label", "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle",
      text: i === 4 ? "now" : new Date(t).toLocaleTimeString(),
    }));
  }
  let lx = left;
  for (const status of [...new Set(segments.map((s) => s.status))]) {
    picture.append(svg("rect", { x: lx, y: 92, width: 12, height: 12, fill: STATUS_COLOURS[status] || "#999" }));
    picture.append(svg("text", { x: lx + 16, y: 102, class: "legend-label", text: status }));
    lx += 30 + status.length * 7;
  }
  holder.replaceChildren(picture);
}

function showModel(ns, model) {
  $("model-title").textContent = `${model.name} ${model.version}`;
  $("model-status").replaceChildren(badge(model.deployment_status));
  $("model-message").textContent = model.deployment_message || "";
  renderDetails(model);
}

async function loadModel(ns, id) {
  const answer = await api("GET", modelPath(ns, id));
  if (answer.status === 404) {
    $("model-title").textContent = `${id}: no such model in ${ns}`;
    return null;
  }
  if (!answer.ok) {
    $("action-result").textContent = `Could not read the model (${answer.status}): ${errorText(answer)}`;
    return null;
  }
  const model = answer.body.model;
  showModel(ns, model);
  const history = await api("GET", `${modelPath(ns, id)}/events?limit=100`);
  drawTimeline(history.ok ? history.body.events : [], model);
  return model;
}

function confirmAction(text) {
  return new Promise((resolve) => {
    $("confirm-text").textContent = text;
    $("confirm").hidden = false;
    const done = (answer) => {
      $("confirm").hidden = true;
      $("confirm-yes").onclick = null;
      $("confirm-no").onclick = null;
      resolve(answer);
    };
    $("confirm-yes").onclick = () => done(true);
    $("confirm-no").onclick = () => done(false);
  });
}

function explainDeploy(answer) {
  const body = answer.body || {};
  if (answer.status === 200 && body.cached) return "Already deployed: nothing was sent, the running deployment keeps serving.";
  if (answer.status === 200 && body.deployment_status === "pending") return "Deployment requested (200): the model is pending until the deployment bridge reports it deployed or failed.";
  if (answer.status === 200) return `Deploy answered 200: ${body.deployment_status}. ${body.message || ""}`;
  if (answer.status === 409) return `Refused (409): ${errorText(answer)}. An undeploy is still running; deploy again once it is done.`;
  if (answer.status === 503) return `Not sent (503): ${errorText(answer)}. The message broker did not take the command; nothing changed, try again.`;
  return `The registry answered ${answer.status}: ${errorText(answer)}`;
}

function explainUndeploy(answer) {
  const body = answer.body || {};
  if (answer.status === 202) return `Undeploy requested (202): the model is ${body.deployment_status} until the bridge reports it removed.`;
  if (answer.status === 200) return "Nothing to undeploy (200): the model is not deployed.";
  if (answer.status === 503) return `Not sent (503): ${errorText(answer)}. Nothing changed, try again.`;
  return `The registry answered ${answer.status}: ${errorText(answer)}`;
}

async function loadAliases(ns, model) {
  const panel = $("aliases-panel");
  if (!features.aliases) { panel.hidden = true; return; }
  const answer = await api("GET", `/v1/namespaces/${enc(ns)}/names/${enc(model.name)}/aliases`);
  if (answer.status === 404 || answer.status === 405) { panel.hidden = true; return; }
  panel.hidden = false;
  const aliases = Array.isArray(answer.body) ? answer.body : (answer.body && answer.body.aliases) || [];
  $("aliases-table").tBodies[0].replaceChildren(...aliases.map((alias) => {
    const button = el("button", { type: "button", class: "rollback", disabled: !alias.previous_model_id, text: "Roll back" });
    button.addEventListener("click", async () => {
      if (!(await confirmAction(`Point alias "${alias.alias}" back to ${alias.previous_model_id}?`))) return;
      const result = await api("POST", `/v1/namespaces/${enc(ns)}/names/${enc(model.name)}/aliases/${enc(alias.alias)}/rollback`);
      $("action-result").textContent = result.ok
        ? `Alias "${alias.alias}" rolled back to ${alias.previous_model_id}.`
        : `Rollback refused (${result.status}): ${errorText(result)}`;
      await loadAliases(ns, model);
    });
    return el("tr", { "data-alias": alias.alias },
      el("td", { text: alias.alias }), el("td", { class: "alias-model", text: alias.model_id }),
      el("td", { text: alias.previous_model_id || "—" }), el("td", { text: when(alias.updated_at) }),
      el("td", { text: alias.updated_by || "" }), el("td", {}, button));
  }));
}

function setUpPredict(ns, model) {
  const panel = $("predict-panel");
  panel.hidden = !features.predict;
  if (panel.hidden || panel.dataset.model === model.model_id) return;
  panel.dataset.model = model.model_id;
  const schema = model.input_schema && typeof model.input_schema === "object" ? model.input_schema : null;
  const fields = [];
  if (schema && Array.isArray(schema.inputs) && schema.inputs.length) {
    // A signature (shared/signatures.py): one field per declared input, with its type and shape.
    for (const input of schema.inputs) {
      if (!input || typeof input.name !== "string") continue;
      const shape = Array.isArray(input.shape) ? `[${input.shape.map((d) => (d === null ? "?" : d)).join(", ")}]` : "";
      fields.push(el("label", { text: `${input.name} (${input.type || input.dtype || "tensor"} ${shape}, JSON)` },
        el("textarea", { "data-input": input.name, rows: 2, text: "[[1.0, 2.0, 3.0]]" })));
    }
  } else if (schema && !("source" in schema) && Object.keys(schema).length) {
    for (const [name, description] of Object.entries(schema)) {
      fields.push(el("label", { text: `${name} (${typeof description === "string" ? description : JSON.stringify(description)}, JSON)` },
        el("textarea", { "data-input": name, rows: 2, text: "[[1.0, 2.0, 3.0]]" })));
    }
  } else {
    fields.push(el("label", { text: "Request body (JSON)" },
      el("textarea", { id: "predict-body", rows: 4, text: '{"inputs": {"x": [[1.0, 2.0, 3.0]]}}' })));
  }
  $("predict-fields").replaceChildren(...fields);
  $("predict-form").onsubmit = async (event) => {
    event.preventDefault();
    const output = $("predict-output");
    let body;
    try {
      if ($("predict-body")) body = JSON.parse($("predict-body").value);
      else {
        body = { inputs: {} };
        for (const area of $("predict-fields").querySelectorAll("textarea[data-input]")) {
          body.inputs[area.dataset.input] = JSON.parse(area.value);
        }
      }
    } catch (error) {
      output.textContent = `Not valid JSON: ${error.message}`;
      return;
    }
    const answer = await api("POST", `${modelPath(ns, model.model_id)}/predict`, body);
    if (answer.status === 405 || (answer.status === 404 && !(answer.body && answer.body.error))) {
      panel.hidden = true;
      return;
    }
    output.textContent = answer.ok
      ? JSON.stringify(answer.body.outputs ?? answer.body, null, 2)
      : `Prediction failed (${answer.status}): ${errorText(answer)}`;
  };
}

const ACTION_BUTTONS = ["deploy", "undeploy", "delete"];

async function modelPage(ns, id, visit) {
  show("model-page");
  for (const button of ACTION_BUTTONS) $(button).disabled = true; // until this model's handlers are set
  $("back-link").href = `#/ns/${enc(ns)}`;
  $("action-result").textContent = "";
  $("predict-output").textContent = "";
  $("predict-panel").dataset.model = "";
  $("confirm").hidden = true;
  const model = await loadModel(ns, id);
  if (!model || visit !== navigation) return;
  await loadAliases(ns, model);
  setUpPredict(ns, model);
  if (visit !== navigation) return;

  const act = async (question, method, suffix, explain) => {
    if (!(await confirmAction(question))) return null;
    const answer = await api(method, `${modelPath(ns, id)}${suffix}`);
    $("action-result").textContent = explain(answer);
    await loadModel(ns, id);
    return answer;
  };
  $("deploy").onclick = () => act(`Deploy ${model.name} ${model.version} on Ray Serve?`, "POST", "/deploy", explainDeploy);
  $("undeploy").onclick = () => act(`Undeploy ${model.name} ${model.version}?`, "DELETE", "/deploy", explainUndeploy);
  $("delete").onclick = async () => {
    const answer = await act(`Delete ${model.name} ${model.version}, its record and its archive? This cannot be undone.`,
      "DELETE", "", (a) => (a.ok ? a.body.message : `Delete refused (${a.status}): ${errorText(a)}`));
    if (answer && answer.ok && answer.body.deleted) location.hash = `#/ns/${enc(ns)}`;
  };
  for (const button of ACTION_BUTTONS) $(button).disabled = false;
  let shownStatus = model.deployment_status;
  const refresh = async () => {
    const current = await loadModel(ns, id);
    if (current) shownStatus = current.deployment_status;
  };
  live = follow(`${modelPath(ns, id)}/watch`, async (changed) => {
    if (!changed || changed.model_id !== id) return;
    showModel(ns, changed);
    if (changed.deployment_status !== shownStatus) await refresh(); // the timeline gains a segment
  }, refresh);
}

// ---- clusters page -------------------------------------------------------------------------------------

function resourcesText(resources) {
  if (!resources || typeof resources !== "object") return "";
  return Object.entries(resources).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ");
}

async function loadClusters() {
  const answer = await api("GET", "/v1/clusters");
  if (answer.status === 404 || answer.status === 405) {
    $("clusters-error").textContent = "This registry does not report clusters.";
    $("nav-clusters").hidden = true;
    return;
  }
  if (!answer.ok) { $("clusters-error").textContent = `Clusters could not be read (${answer.status}): ${errorText(answer)}`; return; }
  $("clusters-error").textContent = "";
  const clusters = Array.isArray(answer.body) ? answer.body : answer.body.clusters || [];
  $("clusters-table").tBodies[0].replaceChildren(...clusters.map((c) => el("tr", { "data-cluster": c.name },
    el("td", { text: c.name }),
    el("td", {}, el("span", { class: `badge status-${c.healthy ? "deployed" : "failed"}`, text: c.healthy ? "healthy" : "unreachable" })),
    el("td", { text: when(c.last_seen_at) }),
    el("td", { text: resourcesText(c.resources) }),
    el("td", { text: resourcesText(c.labels) }),
    el("td", { text: Array.isArray(c.models) ? c.models.map((m) => (typeof m === "string" ? m : `${m.namespace_id}/${m.model_id}`)).join(", ") : String(c.models ?? "") }))));
}

async function clustersPage(visit) {
  show("clusters-page");
  await loadClusters();
  if (visit === navigation && !$("nav-clusters").hidden) live = follow(null, () => {}, loadClusters);
}

// ---- routing -------------------------------------------------------------------------------------------

async function route() {
  const visit = ++navigation;
  stopLive();
  const signedIn = Boolean(session.key);
  $("nav").hidden = !signedIn;
  if (!signedIn) {
    show("sign-in-page");
    return;
  }
  $("whoami").textContent = `namespace ${session.namespace}`;
  await loadFeatures();
  if (visit !== navigation) return;
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (parts[0] === "ns" && parts[1] && parts[2] === "models" && parts[3]) await modelPage(parts[1], parts[3], visit);
  else if (parts[0] === "ns" && parts[1]) {
    if (parts[1] !== document.body.dataset.namespace) listOffset = 0;
    document.body.dataset.namespace = parts[1];
    await namespacePage(parts[1], visit);
  } else if (parts[0] === "clusters") await clustersPage(visit);
  else location.hash = `#/ns/${enc(session.namespace)}`;
}

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", () => {
    stopLive();
    session.signOut();
    features = null;
    location.hash = "#/";
    route();
  });
  $("filter-form").addEventListener("submit", (event) => {
    event.preventDefault();
    listOffset = 0;
    loadList(document.body.dataset.namespace);
  });
  $("filter-clear").addEventListener("click", () => {
    $("filter").value = "";
    listOffset = 0;
    loadList(document.body.dataset.namespace);
  });
  $("prev-page").addEventListener("click", () => {
    listOffset = Math.max(0, listOffset - PAGE_SIZE);
    loadList(document.body.dataset.namespace);
  });
  $("next-page").addEventListener("click", () => {
    listOffset = Number($("next-page").dataset.offset || 0);
    loadList(document.body.dataset.namespace);
  });
  window.addEventListener("hashchange", route);
  route();
});
