// The transcript review page of `mwe review SUITE`, driven by the keyboard: its view for the
// controller in common.js (which owns loading, moving, saving, the status line and the keys they
// share). Every text from the store is written with textContent (the judge's quotes are marked
// by splitting the text, never by building markup from it): a transcript may hold anything a
// model wrote.
"use strict";

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

function judgeLine(view) {
  const j = view.judge;
  if (!j) {
    return "";
  }
  const score = j.score === null ? "no score" : `${j.score}/10`;
  const why = j.justification ? ` (${j.justification.replace(/[.\s]+$/, "")})` : "";
  return `The judge: ${score}${why}.`;
}

reviewPage({
  noun: "transcript",
  path: (position) => `/api/transcripts/${position}`,
  answeredBefore: "Scored before: change it and press Enter to save again.",

  start(s) {
    setText("suite", s.suite);
    const scores = $("scores");
    for (let n = 1; n <= 10; n++) {
      const span = document.createElement("span");
      span.className = "choice";
      span.dataset.score = String(n);
      span.textContent = String(n);
      scores.append(span);
    }
  },

  show(view) {
    setText("target", view.target);
    setText("scenario", view.scenario);
    showTurns(view);
  },

  choice: (answer) => ({ score: answer ? answer.score : null }),
  note: (answer) => (answer && answer.comment ? answer.comment : ""),
  judge: judgeLine,

  choose(choice, key) {
    if (key.length !== 1 || !"0123456789".includes(key)) {
      return false;
    }
    choice.score = key === "0" ? 10 : Number(key);
    return true;
  },

  select(choice) {
    for (const el of document.querySelectorAll("[data-score]")) {
      el.classList.toggle("selected", Number(el.dataset.score) === choice.score);
    }
  },

  missing: (choice) => (choice.score ? "" : "Give a score first: 1-9, or 0 for 10."),
  body: (choice, note) => ({ score: choice.score, comment: note }),
  last: (result) => `Transcript ${result.position + 1}: you gave ${result.answer.score}/10. ${judgeLine(result)}`,
});
