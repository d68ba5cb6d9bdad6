"""Where the literature loop's papers come from, and the triage that keeps 3-5 of them.

Online, each query goes to arXiv, OpenAlex and Semantic Scholar through their maintained
clients (``arxiv``, ``pyalex``, ``semanticscholar``; the optional extra ``literature``).
Every answer is cached as JSON under the campaign's ``literature/cache/`` and read back from
there on a rerun, so a worksheet can be reproduced offline. Without the clients or the
network (or with ``AFR_LITERATURE=offline``) the bundled bibliography is searched instead,
and the worksheet says so. Base URLs can be pointed elsewhere (tests use a loopback server).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from engine.agent.literature import BIBLIOGRAPHY, Mechanism, search

SOURCES = ("arxiv", "openalex", "semanticscholar")
MODES = ("auto", "online", "offline")
PER_SOURCE = 4  # papers asked of each source per query: 3 queries x 3 sources -> 6-10 after dedup
OFFLINE_PER_QUERY = 6  # the bibliography stands in for all three sources
TRIAGE_CANDIDATES = 10
TRIAGE_MIN, TRIAGE_MAX = 3, 5
ARXIV_ID = re.compile(r"(\d{4}\.\d{4,5})")


@dataclass
class Paper:
    title: str
    year: int | None
    source: str  # "arXiv:XXXX.XXXXX" when known, else a DOI or the API's own id
    abstract: str = ""
    authors: list[str] = field(default_factory=list)
    found_by: str = ""  # arxiv, openalex, semanticscholar or bibliography
    query: str = ""
    mechanism: str = ""  # the bibliography key it maps to ("" = none)
    relevance: int = 0
    verdict: str = ""  # kept, or dropped: why


@dataclass
class Gathered:
    hits: dict[str, list[str]]  # query -> "ref (found_by)" of each paper found
    papers: list[Paper]  # the triage candidates (6-10), each with its verdict
    mode: str  # online or offline
    notes: list[str] = field(default_factory=list)


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


@dataclass
class SourceConfig:
    """Where to search; each field defaults from the environment (a mirror, a proxy, a test server)."""

    mode: str = field(default_factory=lambda: os.environ.get("AFR_LITERATURE", "auto"))
    arxiv_url: str | None = field(default_factory=lambda: _env("AFR_ARXIV_URL"))  # .../api/query
    openalex_url: str | None = field(default_factory=lambda: _env("AFR_OPENALEX_URL"))
    semanticscholar_url: str | None = field(default_factory=lambda: _env("AFR_SEMANTICSCHOLAR_URL"))
    timeout: float = 10.0
    probe_timeout: float = 3.0  # a first TCP connect per source, so a dead network costs seconds
    # arXiv's terms ask for one request every three seconds
    arxiv_delay: float = field(default_factory=lambda: float(os.environ.get("AFR_ARXIV_DELAY", "3")))


def _normalise(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", title.lower()).strip()


_BY_ARXIV: dict[str, Mechanism] = {}
for _entry in BIBLIOGRAPHY:  # a paper with several entries maps to its first (its main mechanism)
    _BY_ARXIV.setdefault(_entry.source.split(":", 1)[1], _entry)
_BY_TITLE = {_normalise(m.title): m for m in BIBLIOGRAPHY}


def map_mechanism(paper: Paper) -> Mechanism | None:
    """The bibliography entry a paper is (same arXiv id or title), or None."""
    found = ARXIV_ID.search(paper.source)
    if found and found.group(1) in _BY_ARXIV:
        return _BY_ARXIV[found.group(1)]
    return _BY_TITLE.get(_normalise(paper.title))


# -- the three clients -------------------------------------------------------------------------------


def _arxiv(query: str, config: SourceConfig, state: dict) -> list[Paper]:
    import arxiv

    client = state.get("arxiv_client")
    if client is None:
        client = state["arxiv_client"] = arxiv.Client(page_size=PER_SOURCE, delay_seconds=config.arxiv_delay, num_retries=0)
        if config.arxiv_url:
            client.query_url_format = config.arxiv_url + "?{}"
    results = client.results(arxiv.Search(query=query, max_results=PER_SOURCE))
    return [
        Paper(
            r.title,
            r.published.year if r.published else None,
            f"arXiv:{ARXIV_ID.search(r.entry_id).group(1)}" if ARXIV_ID.search(r.entry_id) else r.entry_id,
            r.summary,
            [a.name for a in r.authors],
        )
        for r in results
    ]


def _openalex(query: str, config: SourceConfig, state: dict) -> list[Paper]:
    import pyalex

    class Works(pyalex.Works):
        @property
        def url(self):  # pyalex builds its URLs on api.openalex.org; follow the configured base
            base = super().url
            return (config.openalex_url.rstrip("/") + base.split("api.openalex.org", 1)[1]) if config.openalex_url else base

    papers = []
    for work in Works().search(query).get(per_page=PER_SOURCE):
        doi = (work.get("doi") or "").lower()
        found = ARXIV_ID.search(doi) if "arxiv" in doi else None
        papers.append(
            Paper(
                work.get("display_name") or work.get("title") or "",
                work.get("publication_year"),
                f"arXiv:{found.group(1)}" if found else (doi.replace("https://doi.org/", "doi:") or work.get("id", "")),
                work["abstract"] if work.get("abstract_inverted_index") else "",
                [a["author"]["display_name"] for a in work.get("authorships", [])],
            )
        )
    return papers


def _semanticscholar(query: str, config: SourceConfig, state: dict) -> list[Paper]:
    from semanticscholar import SemanticScholar

    client = SemanticScholar(timeout=int(config.timeout), api_url=config.semanticscholar_url, retry=False)
    fields = ["title", "year", "authors", "abstract", "externalIds", "url"]
    page = client.search_paper(query, limit=PER_SOURCE, fields=fields)
    papers = []
    for paper in page.items[:PER_SOURCE]:  # the first page only: no silent paging
        ids = paper.externalIds or {}
        source = f"arXiv:{ids['ArXiv']}" if ids.get("ArXiv") else (f"doi:{ids['DOI']}" if ids.get("DOI") else f"S2:{paper.paperId}")
        papers.append(Paper(paper.title or "", paper.year, source, paper.abstract or "", [a.name for a in paper.authors or []]))
    return papers


CLIENTS = {"arxiv": _arxiv, "openalex": _openalex, "semanticscholar": _semanticscholar}


# -- gathering with a cache ------------------------------------------------------------------------

DEFAULT_ENDPOINTS = {
    "arxiv": "https://export.arxiv.org/api/query",
    "openalex": "https://api.openalex.org",
    "semanticscholar": "https://api.semanticscholar.org",
}


def _endpoint(source: str, config: SourceConfig) -> str:
    configured = {"arxiv": config.arxiv_url, "openalex": config.openalex_url, "semanticscholar": config.semanticscholar_url}
    return configured[source] or DEFAULT_ENDPOINTS[source]


def _unreachable(url: str, timeout: float) -> str:
    """Why a TCP connection to the API's host cannot be made within ``timeout`` seconds, or ""."""
    parts = urlparse(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except OSError as error:
        return f"{parts.hostname}:{port} unreachable ({type(error).__name__})"
    return ""



def _cache_file(cache: Path, source: str, query: str) -> Path:
    return cache / f"{source}-{hashlib.sha1(query.encode()).hexdigest()[:12]}.json"


def _online(queries: list[str], config: SourceConfig, cache: Path, notes: list[str]) -> dict[str, list[Paper]]:
    """Each query's papers from every source that answers (or from the cache); {} if none did."""
    found: dict[str, list[Paper]] = {q: [] for q in queries}
    state: dict = {}
    answered = failed = 0
    for query in queries:
        for source in SOURCES:
            path = _cache_file(cache, source, query)
            if path.exists():
                papers = [Paper(**p) for p in json.loads(path.read_text())["papers"]]
                answered += 1
            elif config.mode == "offline" or source in state.get("dead", set()):
                continue
            else:
                if source not in state.setdefault("probed", set()):
                    state["probed"].add(source)
                    problem = _unreachable(_endpoint(source, config), config.probe_timeout)
                    if problem:  # fail fast: the clients themselves wait without a timeout
                        state.setdefault("dead", set()).add(source)
                        notes.append(f"{source} unavailable: {problem}")
                        failed += 1
                        continue
                try:
                    papers = CLIENTS[source](query, config, state)
                except Exception as error:  # no network, no client, a 5xx: this source is out for the cycle
                    state.setdefault("dead", set()).add(source)
                    notes.append(f"{source} unavailable: {type(error).__name__}: {str(error)[:120]}")
                    failed += 1
                    continue
                answered += 1
                cache.mkdir(parents=True, exist_ok=True)
                record = {"source": source, "query": query, "fetched": time.time(), "papers": [asdict(p) for p in papers]}
                path.write_text(json.dumps(record, indent=1))
            for paper in papers:
                paper.found_by, paper.query = source, query
            found[query] += papers
    if not answered:
        return {}
    if failed:
        notes.append(f"{answered} source answers used ({failed} failed)")
    return found


def _offline(queries: list[str]) -> dict[str, list[Paper]]:
    return {
        q: [
            Paper(m.title, m.year, m.source, m.summary, list(m.authors), "bibliography", q, m.key)
            for m in search(q, limit=OFFLINE_PER_QUERY)
        ]
        for q in queries
    }


def triage(found: dict[str, list[Paper]], expressible) -> list[Paper]:
    """6-10 candidates by relevance, then 3-5 kept: papers whose mechanism afr can express, taking
    turns between the queries, then (to reach 3) the most relevant others.

    Relevance is the number of query words in the title and abstract; ``expressible(m)`` says
    whether a bibliography mechanism fits the profile (its args, or an editable file)."""
    unique: dict[str, Paper] = {}
    for query, papers in found.items():
        words = {w for w in re.findall(r"[a-z]{3,}", query.lower())}
        for paper in papers:
            text = f"{paper.title} {paper.abstract}".lower()
            paper.relevance = sum(1 for w in words if w[:6] in text)
            if not paper.mechanism:
                mechanism = map_mechanism(paper)
                paper.mechanism = mechanism.key if mechanism else ""
            key = paper.mechanism or paper.source if paper.found_by == "bibliography" else paper.source
            key = key if key.startswith("arXiv:") or paper.found_by == "bibliography" else _normalise(paper.title)
            if key in unique:  # the same paper from another source or query: one row, every finder named
                known = unique[key]
                finders = dict.fromkeys([*known.found_by.split(", "), paper.found_by])
                known.found_by = ", ".join(finders)
                known.abstract = known.abstract or paper.abstract
                if paper.relevance > known.relevance:
                    known.relevance, known.query = paper.relevance, paper.query
            else:
                unique[key] = paper
    ranked = sorted(unique.values(), key=lambda p: (-p.relevance, p.title))[:TRIAGE_CANDIDATES]
    by_key = {m.key: m for m in BIBLIOGRAPHY}
    per_query: dict[str, list[Paper]] = {}
    for paper in ranked:
        if paper.mechanism and expressible(by_key[paper.mechanism]):
            per_query.setdefault(paper.query, []).append(paper)
    kept: list[Paper] = []
    while len(kept) < TRIAGE_MAX and any(per_query.values()):  # take turns: every symptom gets a paper
        for papers in per_query.values():
            if papers and len(kept) < TRIAGE_MAX:
                kept.append(papers.pop(0))
    for paper in ranked:
        if len(kept) >= TRIAGE_MIN:
            break
        if paper not in kept and paper.relevance > 0:
            kept.append(paper)
    for paper in ranked:
        if paper in kept:
            paper.verdict = "kept" + (f" (mechanism {paper.mechanism})" if paper.mechanism else " (mechanism to be worked out)")
        elif not paper.mechanism or not expressible(by_key[paper.mechanism]):
            paper.verdict = "dropped: no mechanism the profile's args or editable files can express"
        else:
            paper.verdict = f"dropped: ranked below the {TRIAGE_MAX} kept"
    return ranked


def gather(queries: list[str], cache: Path | None, expressible, config: SourceConfig | None = None) -> Gathered:
    config = config or SourceConfig()
    notes: list[str] = []
    found: dict[str, list[Paper]] = {}
    if config.mode not in MODES:
        notes.append(f"AFR_LITERATURE={config.mode!r} is not one of {', '.join(MODES)}; offline")
    elif cache is not None and (config.mode != "offline" or cache.exists()):
        found = _online(queries, config, cache, notes)
    mode = "online" if found else "offline"
    if not found:
        found = _offline(queries)
        notes.append(
            "offline: the bundled bibliography was searched"
            + (" (AFR_LITERATURE=offline)" if config.mode == "offline" else " (no source answered)")
        )
    papers = triage(found, expressible)
    hits = {q: [_hit(p) for p in found[q]] for q in queries}
    return Gathered(hits, papers, mode, notes)


def _hit(paper: Paper) -> str:
    if paper.found_by == "bibliography":
        return f"{paper.mechanism} ({paper.source})"
    return f"{paper.mechanism or paper.title[:60]} ({paper.source}, {paper.found_by})"


def cache_dir(context) -> Path | None:
    """``literature/cache`` of the context's campaign (None outside a campaign)."""
    if context.root is None or context.tag is None:
        return None
    from engine.campaign.options import campaign_dir

    return campaign_dir(Path(context.root), context.tag) / "literature" / "cache"


def expressible_in(profile) -> Callable[[Mechanism], bool]:
    """Whether a mechanism fits ``profile``: its args are mutable there, or it names a code change."""

    def check(mechanism: Mechanism) -> bool:
        args = mechanism.args
        if args:
            aggregator = args.get("aggregator")
            return all(k in profile.mutable or k == "aggregator" for k in args) and (
                aggregator is None or aggregator in profile.aggregators.choices
            )
        return bool(mechanism.code) and "contract risk" not in mechanism.code and mechanism.code != "none"

    return check


def paper_digest(papers: list[Paper]) -> str:
    """The kept papers as the model reads them: ref, title, abstract, and what afr can do with them."""
    by_key = {m.key: m for m in BIBLIOGRAPHY}
    lines = []
    for paper in papers:
        if not paper.verdict.startswith("kept"):
            continue
        line = f"- {paper.source}: {paper.title} ({paper.year or '?'}, {paper.found_by}) {paper.abstract[:300]}"
        mechanism = by_key.get(paper.mechanism)
        if mechanism:
            line += f" | mechanism: {mechanism.mechanism}; args: {json.dumps(mechanism.args)}; code: {mechanism.code}"
        lines.append(line)
    return "\n".join(lines)
