"""The wording of a text: words that no English word list holds (the mark of a garbled text),
and whether it speaks in the first person.

A small generator writes words that are not words ("I coming to lose my trparty,", "DiCellia all
lovely Felchad life!"); a text with one is not a statement anyone would say, whatever its
embedding is near. The list is wordfreq's large English list (Speer et al., words seen in
Wikipedia, subtitles, books, news and web text). A word counts as known when the list holds it,
when it is a word of the behaviour's own description, or when it is a known word with a common
prefix or suffix added ("subgoals", "acausally", "nonexperts"): measured on the 98,600 public
persona statements, 0.30% hold a word the list lacks, most of them such compounds; with the
affixes, 0.11% (104 statements, mostly misspellings such as "extintion").
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence

# Letters of any script ("doppelgänger", "Siddhārtha" are one word, not "doppelg" and "nger"),
# read after NFKC normalisation: an accent typed as a combining mark joins its letter, and a
# full-width or ligature letter ("ｗ", "ﬁ") reads as the plain one.
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
# Longest first, so that "super" is tried before "su" would be (none is a prefix of another
# that matters, but the order keeps the search predictable).
_PREFIXES = (
    "counter",
    "pseudo",
    "hyper",
    "inter",
    "multi",
    "super",
    "under",
    "meta",
    "over",
    "post",
    "self",
    "semi",
    "anti",
    "non",
    "sub",
    "dis",
    "mis",
    "pre",
    "un",
    "re",
    "co",
)
_SUFFIXES = ("ally", "ness", "ity", "ly", "es", "s")


# "I", "me", "we", ... as whole words: the mark of a statement someone says about themselves.
# "I" only as a capital (a lone "i" is more often a list mark or a typo); the rest in lower case or
# capitalised, so that "My goals ..." and "We ..." at the start of a sentence count, and "US" not.
_FIRST_PERSON = re.compile(
    r"\b(I|I'm|I’m|I've|I’ve|I'd|I’d|I'll|I’ll|[Mm]e|[Mm]y|[Mm]ine|[Mm]yself|[Ww]e|[Uu]s|[Oo]ur)\b"
)


# A closed pair of double quotes: someone else's words inside the text.
_QUOTED = re.compile(r'"[^"]*"|“[^”]*”')


def first_person(text: str, *, own_words: bool = False) -> bool:
    """Whether ``text`` speaks in the first person (holds "I", "me", "my", "we", "our", ...).
    ``own_words`` counts only the words outside quotation marks: 'The style is set by "I am
    fine with being shut down"' quotes a first-person statement but is not one."""
    return bool(_FIRST_PERSON.search(_QUOTED.sub(" ", text) if own_words else text))


@functools.lru_cache(maxsize=65536)
def _listed(word: str) -> bool:
    # Imported here: loading the word list costs a tenth of a second that a command which never
    # checks a word (and first_person's callers) should not pay.
    from wordfreq import zipf_frequency

    return zipf_frequency(word, "en", wordlist="large") > 0


def _known(word: str) -> bool:
    lower = word.lower()
    if _listed(lower):
        return True
    stems = [lower] + [lower[: -len(s)] for s in _SUFFIXES if lower.endswith(s)]
    for stem in stems:
        if len(stem) >= 3 and stem != lower and _listed(stem):
            return True
        for prefix in _PREFIXES:
            rest = stem[len(prefix) :]
            if stem.startswith(prefix) and len(rest) >= 3 and _listed(rest):
                return True
    return False


def unknown_words(text: str, allowed: Iterable[str] = ()) -> list[str]:
    """The words of ``text`` that are not English words (see the module's docstring), in order;
    the words of ``allowed`` (e.g. the behaviour's description) count as known."""
    return _unknown(text, _given(allowed))


def garbled(texts: Sequence[str], allowed: Iterable[str] = ()) -> list[bool]:
    """Whether each text holds a word :func:`unknown_words` finds (``allowed`` read once)."""
    given = _given(allowed)
    return [bool(_unknown(text, given)) for text in texts]


def _given(allowed: Iterable[str]) -> set[str]:
    return {w.lower() for a in allowed for w in _words(a)}


def _unknown(text: str, given: set[str]) -> list[str]:
    return [w for w in _words(text) if w.lower() not in given and not _known(w)]


def _words(text: str) -> list[str]:
    return _WORD.findall(unicodedata.normalize("NFKC", text))
