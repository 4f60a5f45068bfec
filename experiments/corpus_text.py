"""Real English paragraphs available offline, and the junk injected into them, for the corpus experiments.

Clean text (prose paragraphs only: tables, code, headings and lists are dropped by ``is_prose``):

- ``readme``: the Debian packages' README files under /usr/share/doc;
- ``python-docs``: the reStructuredText sources of the Python documentation (Debian package ``python3-doc``,
  /usr/share/doc/python3.*/html/_sources), markup roles reduced to their text;
- ``debian-reference``: the plain-text Debian Reference (package ``debian-reference-en``).

Install the two packages with ``apt-get install python3-doc debian-reference-en``; a source that is not installed
is skipped, and the corpus file records which were read.

Junk kinds, each made from real text: ``shuffled`` (a held-out paragraph with its words in random order: the same
words, no syntax), ``random_chars`` (letters and spaces drawn uniformly, the length of a held-out paragraph),
``german`` (German fortunes, /usr/share/games/fortunes/de), ``boilerplate`` (one real license sentence repeated 2 to
9 times).
"""

from __future__ import annotations

import glob
import gzip
import random
import re
from pathlib import Path

FUNCTION_WORDS = frozenset(
    "the of and to a in is it that for be are with as this on you can or by not an if from at which".split()
)
JUNK_KINDS = ("shuffled", "random_chars", "german", "boilerplate")
LICENSE_LINE = "Permission is hereby granted, free of charge, to any person obtaining a copy of this software."


def is_prose(text: str) -> bool:
    """A paragraph of running English text: 200-1500 characters, at least 85% letters and spaces, 30+ words of
    which at least 15% are common function words (tables, code and lists fail one of these)."""
    if not 200 <= len(text) <= 1500:
        return False
    if sum(c.isalpha() or c == " " for c in text) < 0.85 * len(text):
        return False
    words = [w.strip(".,;:()\"'").lower() for w in text.split()]
    return len(words) >= 30 and sum(w in FUNCTION_WORDS for w in words) >= 0.15 * len(words)


_ROLE = re.compile(r":[\w:.-]+:`!?~?([^`<]*?)\s*(<[^>`]*>)?`")
_LINK = re.compile(r"`([^`<]*?)\s*(<[^>`]*>)?`_{1,2}")


def strip_rest(text: str) -> str:
    """reST inline markup reduced to its text: roles, literals, links, emphasis."""
    text = _ROLE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = text.replace("``", "").replace("**", "").replace("::", ":")
    return re.sub(r"(?<!\w)\*(\S[^*]*?)\*(?!\w)", r"\1", text)


def _blocks(text: str) -> list[str]:
    """Blank-line separated blocks whose first line is not indented deeper than the text around it (indented
    blocks are code or quotes in reST)."""
    return [b for b in re.split(r"\n\s*\n", text) if b.strip()]


def readme_paragraphs() -> list[str]:
    out = []
    for path in sorted(glob.glob("/usr/share/doc/*/README*")):
        if path.endswith((".gz", ".html")) or not Path(path).is_file():
            continue
        out += [" ".join(b.split()) for b in _blocks(Path(path).read_text(errors="ignore"))]
    return out


def python_doc_paragraphs() -> list[str]:
    out = []
    for path in sorted(glob.glob("/usr/share/doc/python3*/html/_sources/**/*.rst.txt", recursive=True)):
        for block in _blocks(Path(path).read_text(errors="ignore")):
            first = block.lstrip("\n").split("\n", 1)[0]
            if first.startswith((" ", "\t", "..", ">>>")):
                continue
            out.append(" ".join(strip_rest(block).split()))
    return out


def debian_reference_paragraphs() -> list[str]:
    out = []
    for path in sorted(glob.glob("/usr/share/debian-reference/debian-reference.en.txt.gz")):
        with gzip.open(path, "rt", errors="ignore") as handle:
            out += [" ".join(b.split()) for b in _blocks(handle.read())]
    return out


SOURCES = {
    "readme": readme_paragraphs,
    "python-docs": python_doc_paragraphs,
    "debian-reference": debian_reference_paragraphs,
}


def clean_paragraphs() -> list[tuple[str, str]]:
    """``(source, paragraph)`` for every distinct prose paragraph of the installed sources, in a fixed order."""
    seen: set[str] = set()
    out = []
    for source, read in SOURCES.items():
        for text in read():
            if is_prose(text) and text not in seen:
                seen.add(text)
                out.append((source, text))
    return out


def german_texts() -> list[str]:
    texts = []
    for path in sorted(glob.glob("/usr/share/games/fortunes/de/*")):
        if path.endswith((".dat", ".u8")) or Path(path).is_dir():
            continue
        for part in Path(path).read_text(errors="ignore").split("\n%\n"):
            part = " ".join(part.split())
            if 150 <= len(part) <= 1500:
                texts.append(part)
    return texts


def make_junk(kind: str, held: list[str], n: int, rng: random.Random) -> list[str]:
    """``n`` junk documents of ``kind``; ``shuffled`` and ``random_chars`` consume paragraphs of ``held``."""
    if kind == "shuffled":
        out = []
        for text in held[:n]:
            words = text.split()
            rng.shuffle(words)
            out.append(" ".join(words))
        return out
    if kind == "random_chars":
        letters = "abcdefghijklmnopqrstuvwxyz      "
        return ["".join(rng.choice(letters) for _ in text) for text in held[:n]]
    if kind == "german":
        return rng.sample(german_texts(), n)
    if kind == "boilerplate":
        return [" ".join([LICENSE_LINE] * (2 + i % 8)) for i in range(n)]
    raise ValueError(f"unknown junk kind {kind!r}; choose one of {JUNK_KINDS}")


def build_corpus(n_clean: int, n_junk: int, n_eval: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """The noisy corpus (``n_clean`` clean paragraphs + ``n_junk`` of every junk kind, shuffled; rows have
    ``text``, ``kind`` and ``source``) and ``n_eval`` further clean paragraphs that no corpus row was made from,
    for held-out evaluation."""
    rng = random.Random(seed)
    clean = clean_paragraphs()
    rng.shuffle(clean)
    need = n_clean + 2 * n_junk + n_eval
    if len(clean) < need:
        raise RuntimeError(
            f"only {len(clean)} clean paragraphs found, {need} needed: apt-get install python3-doc debian-reference-en"
        )
    docs = [{"text": t, "kind": "clean", "source": s} for s, t in clean[:n_clean]]
    held = [t for _, t in clean[n_clean : n_clean + 2 * n_junk]]
    for kind in JUNK_KINDS:
        part = held[:n_junk] if kind == "shuffled" else held[n_junk:] if kind == "random_chars" else []
        docs += [{"text": t, "kind": kind, "source": kind} for t in make_junk(kind, part, n_junk, rng)]
    rng.shuffle(docs)
    evaluation = [{"text": t, "kind": "clean", "source": s} for s, t in clean[n_clean + 2 * n_junk : need]]
    return docs, evaluation
