"use strict";
// The trustune console: POST /v1/predict (and /v1/explain) with the pasted key, draw the answer.
// Everything is built with textContent / CSSOM: no HTML from the server or the user is parsed.

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

async function call(path, key, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "Authorization": "Bearer " + key },
    body: JSON.stringify(body),
  });
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) {
    let detail = data && data.detail;
    if (Array.isArray(detail)) detail = detail.map((d) => d.msg).join("; ");
    throw new Error(response.status + ": " + (detail || response.statusText));
  }
  return data;
}

function drawBars(probabilities) {
  const bars = document.getElementById("bars");
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

function drawHeatmap(explanation) {
  const map = document.getElementById("heatmap");
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
  if (at < text.length) map.append(document.createTextNode(text.slice(at)));
  document.getElementById("method").textContent = explanation.method;
  document.getElementById("explain-title").hidden = false;
  document.getElementById("legend").hidden = false;
}

async function submit(event) {
  event.preventDefault();
  const key = document.getElementById("key").value.trim();
  const text = document.getElementById("text").value;
  const status = document.getElementById("status");
  const button = document.getElementById("submit");
  status.className = "";
  status.textContent = "working...";
  button.disabled = true;
  document.getElementById("explain-title").hidden = true;
  document.getElementById("legend").hidden = true;
  document.getElementById("heatmap").replaceChildren();
  try {
    const result = await call("/v1/predict", key, { texts: [text] });
    const prediction = result.predictions[0];
    document.getElementById("label").textContent = String(prediction.label);
    document.getElementById("score").textContent = "(" + (100 * prediction.score).toFixed(1) + "%)";
    drawBars(prediction.probabilities);
    document.getElementById("result").hidden = false;
    status.textContent = "";
    if (document.getElementById("explain").checked) {
      status.textContent = "explaining...";
      const explained = await call("/v1/explain", key, { texts: [text] });
      drawHeatmap(explained.explanations[0]);
      status.textContent = "done";
    } else {
      status.textContent = "done";
    }
  } catch (error) {
    status.className = "error";
    status.textContent = String(error.message || error);
  } finally {
    button.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("form").addEventListener("submit", submit);
});
