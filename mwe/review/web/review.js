// The review page of `mwe review`, driven by the keyboard: its view for the controller in
// common.js (which owns loading, moving, saving, the status line and the keys they share).
// Every text from the store is written with textContent, never as markup: an item may hold
// anything a generator wrote.
"use strict";

const VERDICTS = { y: "yes", n: "no", u: "unsure" };

function quoted(answer) {
  return JSON.stringify(answer);
}

function judgeLine(item) {
  if (item.label_confidence === null || item.label_confidence === undefined) {
    return "The judge gave this item no label confidence.";
  }
  return `The judge's confidence in this label: ${item.label_confidence.toFixed(2)}.`;
}

reviewPage({
  noun: "item",
  path: (position) => `/api/items/${position}`,
  answeredBefore: "Answered before: change it and press Enter to save again.",
  moves: { k: -1, j: 1 },

  start(s) {
    setText("set", s.set);
  },

  show(item) {
    setText("text", item.text);
    setText("matching", quoted(item.matching));
    setText("not-matching", item.not_matching.map(quoted).join(" or "));
  },

  choice: (answer) => ({
    verdict: answer ? answer.verdict : null,
    relevance: answer ? answer.relevance : null,
  }),
  note: (answer) => (answer && answer.note ? answer.note : ""),
  judge: (item) => (item.answer ? judgeLine(item) : ""),

  choose(choice, pressed) {
    const key = pressed.toLowerCase();
    if (Object.hasOwn(VERDICTS, key)) {
      choice.verdict = VERDICTS[key];
    } else if ("12345".includes(key) && key.length === 1) {
      choice.relevance = Number(key);
    } else {
      return false;
    }
    return true;
  },

  select(choice) {
    for (const el of document.querySelectorAll("[data-verdict]")) {
      el.classList.toggle("selected", el.dataset.verdict === choice.verdict);
    }
    for (const el of document.querySelectorAll("[data-relevance]")) {
      el.classList.toggle("selected", Number(el.dataset.relevance) === choice.relevance);
    }
  },

  missing: (choice) => (choice.verdict ? "" : "Say first whether the label is right: y, n or u."),
  body: (choice, note) => ({ verdict: choice.verdict, relevance: choice.relevance, note }),

  last: (result, answered) =>
    `Item ${answered.position + 1}: you said ${result.answer.verdict}` +
    (result.answer.relevance ? `, relevance ${result.answer.relevance}` : "") +
    `. ${judgeLine(result)}`,

  async finished() {
    const s = await api("/api/summary");
    const parts = [`${s.items_reviewed} items reviewed by ${s.reviewers.length} reviewer(s)`];
    if (s.label_agreement !== null) {
      parts.push(`label agreement ${(100 * s.label_agreement).toFixed(1)}%`);
    }
    if (s.mean_relevance !== null) {
      parts.push(`mean relevance ${s.mean_relevance.toFixed(2)}/5`);
    }
    setText("summary", parts.join(", ") + ".");
  },
});
