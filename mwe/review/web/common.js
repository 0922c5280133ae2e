// What the two review pages share (loaded before review.js or transcripts.js): the API call,
// the status line, the progress bar, moving between positions and the comment box's keys.
// Every text from the store is written with textContent, never as markup.
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

// Load the position `step` away from the current one (from the end once all are done).
async function move(state, step, load) {
  if (state.busy) {
    return;
  }
  const target = state.position === null ? state.total - 1 : state.position + step;
  if (target >= 0 && target < state.total) {
    await load(target);
  }
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
