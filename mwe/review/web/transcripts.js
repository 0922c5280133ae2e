// The transcript review page of `mwe review SUITE`, driven by the keyboard (common.js holds what
// it shares with review.js). Every text from the store is written with textContent (the judge's
// quotes are marked by splitting the text, never by building markup from it): a transcript may
// hold anything a model wrote.
"use strict";

const state = { total: 0, position: null, view: null, score: null, busy: false };

// The text as nodes, each quote of the judge's evidence found in it wrapped in <mark>.
function marked(text, quotes) {
  const parts = [];
  let rest = text;
  while (rest) {
    let best = null;
    for (const quote of quotes) {
      const at = quote ? rest.indexOf(quote) : -1;
      if (at >= 0 && (best === null || at < best.at)) {
        best = { at, quote };
      }
    }
    if (best === null) {
      parts.push(document.createTextNode(rest));
      break;
    }
    parts.push(document.createTextNode(rest.slice(0, best.at)));
    const mark = document.createElement("mark");
    mark.textContent = best.quote;
    parts.push(mark);
    rest = rest.slice(best.at + best.quote.length);
  }
  return parts;
}

function showTurns(view) {
  const box = $("turns");
  box.replaceChildren();
  for (const turn of view.turns) {
    const div = document.createElement("div");
    div.className = `turn ${turn.role}`;
    const who = document.createElement("strong");
    who.textContent = turn.role === "user" ? "User (auditor)" : "Assistant (target)";
    const body = document.createElement("pre");
    body.append(...(turn.role === "assistant" ? marked(turn.content, view.evidence) : [document.createTextNode(turn.content)]));
    div.append(who, body);
    box.append(div);
  }
}

function showSelection() {
  for (const el of document.querySelectorAll("[data-score]")) {
    el.classList.toggle("selected", Number(el.dataset.score) === state.score);
  }
}

function judgeLine(view) {
  const j = view.judge;
  if (!j) {
    return "";
  }
  const score = j.score === null ? "no score" : `${j.score}/10`;
  const why = j.justification ? ` (${j.justification.replace(/[.\s]+$/, "")})` : "";
  return `The judge: ${score}${why}.`;
}

async function load(position) {
  const view = await api(`/api/transcripts/${position}`);
  state.view = view;
  state.position = position;
  state.score = view.answer ? view.answer.score : null;
  setText("position", String(position + 1));
  document.body.dataset.position = String(position + 1);
  setText("target", view.target);
  setText("scenario", view.scenario);
  showTurns(view);
  $("note").value = view.answer && view.answer.comment ? view.answer.comment : "";
  // The judge's score only once this reviewer has given theirs: it must not anchor them.
  $("judge").hidden = !view.answer;
  setText("judge", judgeLine(view));
  status(view.answer ? "Scored before: change it and press Enter to save again." : "");
  showSelection();
  $("done").hidden = true;
  $("review").hidden = false;
}

async function save() {
  if (state.busy || state.position === null) {
    return;
  }
  if (!state.score) {
    status("Give a score first: 1-9, or 0 for 10.", true);
    return;
  }
  state.busy = true;
  let result;
  try {
    result = await api(`/api/transcripts/${state.position}/review`, {
      method: "PUT",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ score: state.score, comment: $("note").value }),
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
    last.textContent = `Transcript ${result.position + 1}: you gave ${result.answer.score}/10. ${judgeLine(result)}`;
    if (result.next === null) {
      state.position = null;
      $("review").hidden = true;
      $("done").hidden = false;
      document.body.dataset.position = "done";
    } else {
      await load(result.next);
    }
  } catch (error) {
    status(`Saved, but the next transcript did not load: ${error.message}`, true);
  } finally {
    state.busy = false;
  }
}

function onKey(event) {
  if (ignoredKey(event) || noteKey(event, save)) {
    return;
  }
  const key = event.key;
  if (state.position !== null && key.length === 1 && "0123456789".includes(key)) {
    state.score = key === "0" ? 10 : Number(key);
  } else if (state.position !== null && key.toLowerCase() === "c") {
    event.preventDefault();
    $("note").focus();
    return;
  } else if (key === "Enter") {
    save();
    return;
  } else if (key === "ArrowLeft") {
    move(state, -1, load);
    return;
  } else if (key === "ArrowRight") {
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
    setText("suite", s.suite);
    setText("behavior", s.behavior);
    setText("reviewer", s.reviewer);
    setText("total", String(s.total));
    const scores = $("scores");
    for (let n = 1; n <= 10; n++) {
      const span = document.createElement("span");
      span.className = "choice";
      span.dataset.score = String(n);
      span.textContent = String(n);
      scores.append(span);
    }
    showProgress(state.total, s.reviewed);
    document.addEventListener("keydown", onKey);
    if (s.position === null) {
      $("done").hidden = false;
      document.body.dataset.position = "done";
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
