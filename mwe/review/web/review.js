// The review page of `mwe review`, driven by the keyboard (common.js holds what it shares with
// transcripts.js). Every text from the store is written with textContent, never as markup: an
// item may hold anything a generator wrote.
"use strict";

const state = { total: 0, position: null, item: null, verdict: null, relevance: null, busy: false };

function quoted(answer) {
  return JSON.stringify(answer);
}

function showSelection() {
  for (const el of document.querySelectorAll("[data-verdict]")) {
    el.classList.toggle("selected", el.dataset.verdict === state.verdict);
  }
  for (const el of document.querySelectorAll("[data-relevance]")) {
    el.classList.toggle("selected", Number(el.dataset.relevance) === state.relevance);
  }
}

function judgeLine(item) {
  if (item.label_confidence === null || item.label_confidence === undefined) {
    return "The judge gave this item no label confidence.";
  }
  return `The judge's confidence in this label: ${item.label_confidence.toFixed(2)}.`;
}

async function load(position) {
  const item = await api(`/api/items/${position}`);
  state.item = item;
  state.position = position;
  state.verdict = item.answer ? item.answer.verdict : null;
  state.relevance = item.answer ? item.answer.relevance : null;
  setText("position", String(position + 1));
  document.body.dataset.position = String(position + 1);
  setText("text", item.text);
  setText("matching", quoted(item.matching));
  setText("not-matching", item.not_matching.map(quoted).join(" or "));
  $("note").value = item.answer && item.answer.note ? item.answer.note : "";
  // The judge's confidence only once this reviewer has answered: it must not anchor them.
  $("judge").hidden = !item.answer;
  setText("judge", item.answer ? judgeLine(item) : "");
  status(item.answer ? "Answered before: change it and press Enter to save again." : "");
  showSelection();
  $("done").hidden = true;
  $("review").hidden = false;
}

async function finish() {
  state.position = null;
  $("review").hidden = true;
  $("done").hidden = false;
  document.body.dataset.position = "done";
  const s = await api("/api/summary");
  const parts = [`${s.items_reviewed} items reviewed by ${s.reviewers.length} reviewer(s)`];
  if (s.label_agreement !== null) {
    parts.push(`label agreement ${(100 * s.label_agreement).toFixed(1)}%`);
  }
  if (s.mean_relevance !== null) {
    parts.push(`mean relevance ${s.mean_relevance.toFixed(2)}/5`);
  }
  setText("summary", parts.join(", ") + ".");
}

async function save() {
  if (state.busy || state.position === null) {
    return;
  }
  if (!state.verdict) {
    status("Say first whether the label is right: y, n or u.", true);
    return;
  }
  state.busy = true;
  const answered = state.item;
  let result;
  try {
    result = await api(`/api/items/${state.position}/review`, {
      method: "PUT",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        verdict: state.verdict,
        relevance: state.relevance,
        note: $("note").value,
      }),
    });
  } catch (error) {
    status(`Not saved: ${error.message}`, true);
    state.busy = false;
    return;
  }
  try {
    showProgress(state.total, result.reviewed);
    const last = $("last");
    last.hidden = false;
    last.textContent =
      `Item ${answered.position + 1}: you said ${result.answer.verdict}` +
      (result.answer.relevance ? `, relevance ${result.answer.relevance}` : "") +
      `. ${judgeLine(result)}`;
    if (result.next === null) {
      await finish();
    } else {
      await load(result.next);
    }
  } catch (error) {
    status(`Saved, but the next item did not load: ${error.message}`, true);
  } finally {
    state.busy = false;
  }
}

function onKey(event) {
  if (ignoredKey(event) || noteKey(event, save)) {
    return;
  }
  const key = event.key.toLowerCase();
  const verdicts = { y: "yes", n: "no", u: "unsure" };
  if (state.position !== null && key in verdicts) {
    state.verdict = verdicts[key];
  } else if (state.position !== null && "12345".includes(key) && key.length === 1) {
    state.relevance = Number(key);
  } else if (state.position !== null && key === "c") {
    event.preventDefault();
    $("note").focus();
    return;
  } else if (event.key === "Enter") {
    save();
    return;
  } else if (event.key === "ArrowLeft" || key === "k") {
    move(state, -1, load);
    return;
  } else if (event.key === "ArrowRight" || key === "j") {
    move(state, 1, load);
    return;
  } else {
    return;
  }
  event.preventDefault();
  showSelection();
  status("");
}

async function start() {
  try {
    const s = await api("/api/state");
    state.total = s.total;
    setText("set", s.set);
    setText("behavior", s.behavior);
    setText("reviewer", s.reviewer);
    setText("total", String(s.total));
    showProgress(state.total, s.reviewed);
    document.addEventListener("keydown", onKey);
    if (s.position === null) {
      await finish();
    } else {
      await load(s.position);
    }
    document.body.dataset.ready = "true";
  } catch (error) {
    status(`Cannot load the review: ${error.message}`, true);
    $("review").hidden = false;
  }
}

start();
