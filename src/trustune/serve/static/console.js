"use strict";
// The trustune console: POST /v1/predict (and /v1/explain) with the pasted key, draw the answer;
// GET /v1/model for the model's facts. Everything is built with textContent / CSSOM: no HTML
// from the server or the user is parsed.

const CUT_MARK = "\u2702 cut";

let facts = null; // { key, info }: the model facts, and the key that read them
let latest = 0; // the newest submission; answers to older ones are dropped

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status; // 0: no answer (network error)
  }
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function byId(id) {
  return document.getElementById(id);
}

async function call(method, path, key, body) {
  const headers = { "Authorization": "Bearer " + key };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, "network error: no answer from the server (" + (e.message || e) + ")");
  }
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) {
    let detail = data && data.detail;
    if (Array.isArray(detail)) detail = detail.map((d) => d.msg).join("; ");
    let message = response.status + ": " + String(detail || response.statusText || "refused");
    const retry = response.headers.get("Retry-After");
    if (retry) message += " (retry after " + retry + " s)";
    throw new ApiError(response.status, message);
  }
  if (data === null) throw new ApiError(response.status, response.status + ": the answer is not JSON");
  return data;
}

// ---- the result: label, bars, cut note, heat map ----

function clearResult() {
  byId("result").hidden = true;
  byId("label").textContent = "";
  byId("score").textContent = "";
  byId("bars").replaceChildren();
  const note = byId("cut-note");
  note.textContent = "";
  note.hidden = true;
  byId("explain-title").hidden = true;
  byId("method").textContent = "";
  const map = byId("heatmap");
  map.replaceChildren();
  map.hidden = true;
  byId("legend").hidden = true;
}

function drawPrediction(prediction) {
  if (typeof prediction.value === "number") { // a regression run: a score, no labels
    byId("label-name").textContent = "Score";
    byId("label").textContent = String(prediction.value);
    return;
  }
  byId("label-name").textContent = "Label";
  byId("label").textContent = String(prediction.label);
  byId("score").textContent = "(" + (100 * prediction.score).toFixed(1) + "%)";
  drawBars(prediction.probabilities);
}

function drawBars(probabilities) {
  const bars = byId("bars");
  bars.replaceChildren();
  const entries = Object.entries(probabilities).sort((a, b) => b[1] - a[1]);
  for (const [name, p] of entries) {
    const row = el("div", "bar-row");
    row.dataset.label = name;
    row.dataset.probability = String(p);
    const track = el("div", "bar-track");
    const bar = el("div", "bar");
    bar.style.width = (100 * p).toFixed(1) + "%";
    track.append(bar);
    row.append(el("span", "bar-name", name), track, el("span", "bar-value", (100 * p).toFixed(1) + "%"));
    bars.append(row);
  }
}

function drawCutNote(maxLength, droppedWords) {
  const note = byId("cut-note");
  let text = "Text cut: the model read ";
  text += maxLength ? "the first " + maxLength + " tokens" : "only the start of the text";
  text += "; the rest was ignored";
  if (droppedWords > 0) text += " (" + droppedWords + (droppedWords === 1 ? " word)" : " words)");
  note.textContent = text + ".";
  note.hidden = false;
}

function appendCut(node, rest) {
  const marker = el("span", "cut-marker", CUT_MARK);
  marker.title = "the model read no further";
  node.append(marker);
  if (rest) node.append(el("span", "ignored", rest));
}

function drawCutText(text, cutAt) {
  // Without an explanation: the text itself, with the part the model ignored struck through.
  const map = byId("heatmap");
  map.replaceChildren(document.createTextNode(text.slice(0, cutAt)));
  appendCut(map, text.slice(cutAt));
  map.hidden = false;
}

function drawHeatmap(explanation) {
  const map = byId("heatmap");
  map.replaceChildren();
  const top = Math.max(0, ...explanation.scores.map(Math.abs));
  const text = explanation.text;
  let at = 0;
  explanation.words.forEach((word, i) => {
    const [start, end] = explanation.spans[i];
    if (start > at) map.append(document.createTextNode(text.slice(at, start)));
    const span = el("span", "word", text.slice(start, end));
    const score = explanation.scores[i];
    const strength = top > 0 ? score / top : 0;
    span.dataset.score = String(score);
    span.title = word + ": " + score.toFixed(4);
    span.style.backgroundColor = strength >= 0
      ? "rgba(0, 150, 70, " + (0.8 * strength).toFixed(3) + ")"
      : "rgba(210, 30, 40, " + (-0.8 * strength).toFixed(3) + ")";
    map.append(span);
    at = Math.max(at, end);
  });
  // A cut text's words stop at the cut: the marker goes after the last word the model saw.
  if (explanation.truncated) appendCut(map, text.slice(at));
  else if (at < text.length) map.append(document.createTextNode(text.slice(at)));
  map.hidden = false;
  byId("method").textContent = explanation.method;
  byId("explain-title").hidden = false;
  byId("legend").hidden = false;
}

// ---- the model's facts ----

function clearFacts() {
  facts = null;
  byId("facts-list").replaceChildren();
  byId("facts").hidden = true;
  byId("facts-hint").hidden = false;
}

function number(value) {
  return Number.isInteger(value) ? String(value) : Number(value).toPrecision(4);
}

function drawFacts(info) {
  const list = byId("facts-list");
  list.replaceChildren();
  const add = (fact, name, value) => {
    const dd = el("dd", "", value);
    dd.dataset.fact = fact;
    list.append(el("dt", "", name), dd);
  };
  add("run", "Run", String(info.run));
  if (info.base_model) add("base_model", "Base model", String(info.base_model));
  if (info.task) add("task", "Task", String(info.task) + (info.pairs ? " (text pairs)" : ""));
  if (info.labels && info.labels.length) add("labels", "Labels", info.labels.map(String).join(", "));
  add("created", "Created", info.created ? String(info.created) : "unknown");
  const metrics = info.metrics || {};
  if (typeof metrics.accuracy === "number") {
    add("accuracy", "Validation accuracy", (100 * metrics.accuracy).toFixed(1) + "%");
    if (typeof metrics.f1_macro === "number") add("f1_macro", "Validation macro F1", number(metrics.f1_macro));
  } else {
    for (const [name, value] of Object.entries(metrics).slice(0, 4)) {
      add("metric-" + name, "Validation " + name, number(value));
    }
  }
  const privacy = info.privacy;
  if (privacy && privacy.dp) {
    let budget = typeof privacy.epsilon === "number" ? "\u03b5 = " + number(privacy.epsilon) : "\u03b5 not recorded";
    if (typeof privacy.delta === "number") budget += ", \u03b4 = " + privacy.delta.toExponential(1);
    add("epsilon", "Differential privacy", budget);
  } else {
    add("epsilon", "Differential privacy", "no (not trained with DP-SGD)");
  }
  if (privacy && privacy.redact_pii) add("redact_pii", "PII", "redacted before prediction");
  if (info.max_length) {
    add("max_length", "Max length", info.max_length + " tokens (the rest of a longer text is ignored)");
  }
  byId("facts").hidden = false;
  byId("facts-hint").hidden = true;
}

async function loadFacts(key) {
  if (facts && facts.key === key) return facts.info;
  const info = await call("GET", "/v1/model", key);
  facts = { key, info };
  drawFacts(info);
  return info;
}

// ---- one submission ----

function showError(error, keepResult) {
  // A failed request never leaves an older answer on screen: the error is the only result,
  // except a later step failing (facts, explanation) under this submission's own prediction.
  const status = byId("status");
  if (!keepResult || error.status === 401) clearResult();
  if (error.status === 401) clearFacts(); // the key is not valid (any more): drop what it read
  status.className = "error";
  status.textContent = String(error.message || error);
}

async function submit(event) {
  event.preventDefault();
  const mine = ++latest;
  const key = byId("key").value.trim();
  const text = byId("text").value;
  const explain = byId("explain").checked;
  const status = byId("status");
  const button = byId("submit");
  clearResult();
  status.className = "";
  status.textContent = "working...";
  button.disabled = true;
  let predicted = false;
  try {
    const result = await call("POST", "/v1/predict", key, { texts: [text] });
    if (mine !== latest) return;
    const prediction = result.predictions[0];
    drawPrediction(prediction);
    byId("result").hidden = false;
    predicted = true;
    const info = await loadFacts(key);
    if (mine !== latest) return;
    if (prediction.truncated) {
      drawCutNote(info.max_length, 0);
      if (typeof prediction.cut_at === "number") drawCutText(text, prediction.cut_at);
    }
    if (explain) {
      status.textContent = "explaining...";
      const explained = await call("POST", "/v1/explain", key, { texts: [text] });
      if (mine !== latest) return;
      const explanation = explained.explanations[0];
      drawHeatmap(explanation);
      if (explanation.truncated) drawCutNote(info.max_length, explanation.dropped_words);
    }
    status.textContent = "done";
  } catch (error) {
    if (mine === latest) showError(error, predicted);
  } finally {
    if (mine === latest) button.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  byId("form").addEventListener("submit", submit);
});
