// The one controller of the two review pages (loaded before review.js or transcripts.js, which
// each hand `reviewPage` their view): the state, loading a position and moving between them, the
// busy flag, saving, the progress bar, the status line, the finish screen, and the keys that
// navigate, open the comment box and save. Every text from the store is written with
// textContent, never as markup.
"use strict";

const $ = (id) => document.getElementById(id);

function setText(id, text) {
  $(id).textContent = text;
}

async function api(path, options) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(body.error || body.detail || `${response.status} ${response.statusText}`);
  }
  return body;
}

function status(message, isError) {
  setText("status", message);
  $("status").classList.toggle("error", Boolean(isError));
}

function showProgress(total, reviewed) {
  setText("reviewed", String(reviewed));
  $("progress").max = total;
  $("progress").value = reviewed;
}

// The keys while the comment box has the focus: Esc leaves it, Enter saves. True when the
// event belonged to the box (the page's own keys then do nothing).
function noteKey(event, save) {
  const note = $("note");
  if (document.activeElement !== note) {
    return false;
  }
  if (event.key === "Escape") {
    note.blur();
  } else if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    note.blur();
    save();
  }
  return true;
}

// A held key repeats, and Enter also confirms an input method's composition: neither is an
// answer; nor is a key pressed with a modifier.
function ignoredKey(event) {
  return event.repeat || event.isComposing || event.ctrlKey || event.metaKey || event.altKey;
}

// Run a review page. What differs between the pages comes from `view`:
//   noun            "item" or "transcript", as the status line names it
//   path(position)  the record's API path; its answer is PUT to `${path}/review`
//   answeredBefore  the status line of a record this reviewer answered before
//   start(s)        show the page's own parts of /api/state (and build what it needs)
//   show(record)    show the record (the position, comment and judge are the controller's)
//   choice(answer)  the choice held for a record from its stored answer (null if none)
//   note(answer)    the comment of the stored answer, or ""
//   judge(record)   the text of the judge's line (shown only once the record is answered)
//   choose(choice, key)  set the choice `key` stands for in `choice`; true if it stood for one
//   select(choice)  mark the chosen elements
//   missing(choice) what is missing before the choice can be saved, or ""
//   body(choice, note)   the answer to PUT
//   last(result, answered)  the line saying what was saved, from the PUT's result
//   finished()      (optional) fill the finish screen
//   moves           (optional) letters that move too, as {letter: step}, besides the arrows
function reviewPage(view) {
  const state = { total: 0, position: null, record: null, choice: null, busy: false };

  async function load(position) {
    const record = await api(view.path(position));
    state.record = record;
    state.position = position;
    state.choice = view.choice(record.answer);
    setText("position", String(position + 1));
    document.body.dataset.position = String(position + 1);
    view.show(record);
    $("note").value = view.note(record.answer);
    // The judge's view only once this reviewer has answered: it must not anchor them.
    $("judge").hidden = !record.answer;
    setText("judge", view.judge(record));
    status(record.answer ? view.answeredBefore : "");
    view.select(state.choice);
    $("done").hidden = true;
    $("review").hidden = false;
  }

  // Load the position `step` away from the current one (from the end once all are done).
  async function move(step) {
    if (state.busy) {
      return;
    }
    const target = state.position === null ? state.total - 1 : state.position + step;
    if (target >= 0 && target < state.total) {
      await load(target);
    }
  }

  async function finish() {
    state.position = null;
    $("review").hidden = true;
    $("done").hidden = false;
    document.body.dataset.position = "done";
    if (view.finished) {
      await view.finished();
    }
  }

  async function save() {
    if (state.busy || state.position === null) {
      return;
    }
    const missing = view.missing(state.choice);
    if (missing) {
      status(missing, true);
      return;
    }
    state.busy = true;
    const answered = state.record;
    let result;
    try {
      result = await api(`${view.path(state.position)}/review`, {
        method: "PUT",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(view.body(state.choice, $("note").value)),
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
      last.textContent = view.last(result, answered);
      if (result.next === null) {
        await finish();
      } else {
        await load(result.next);
      }
    } catch (error) {
      status(`Saved, but the next ${view.noun} did not load: ${error.message}`, true);
    } finally {
      state.busy = false;
    }
  }

  function onKey(event) {
    if (ignoredKey(event) || noteKey(event, save)) {
      return;
    }
    const key = event.key.toLowerCase();
    const moves = view.moves || {};
    if (state.position !== null && view.choose(state.choice, event.key)) {
      event.preventDefault();
      view.select(state.choice);
      status("");
    } else if (state.position !== null && key === "c") {
      event.preventDefault();
      $("note").focus();
    } else if (event.key === "Enter") {
      save();
    } else if (event.key === "ArrowLeft") {
      move(-1);
    } else if (event.key === "ArrowRight") {
      move(1);
    } else if (Object.hasOwn(moves, key)) {
      move(moves[key]);
    }
  }

  async function start() {
    try {
      const s = await api("/api/state");
      state.total = s.total;
      view.start(s);
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
}
