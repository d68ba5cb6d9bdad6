"""A loopback HTTP server that speaks the three literature APIs afr's clients call.

``GET /api/query`` answers as arXiv's Atom feed, ``GET /works`` as OpenAlex's JSON (abstracts
as inverted indexes) and ``GET /graph/v1/paper/search`` as Semantic Scholar's. Each answers
with the catalogue's papers that share a word with the query. ``fail`` names sources that
answer 500; every request path is recorded.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse
from xml.sax.saxutils import escape

CATALOGUE = [
    ("1812.06127", "Federated Optimization in Heterogeneous Networks", 2018, ["Tian Li", "Anit Kumar Sahu"],
     "A proximal term limits client drift under heterogeneous data and local work."),
    ("1910.06378", "SCAFFOLD: Stochastic Controlled Averaging for Federated Learning", 2019,
     ["Sai Praneeth Karimireddy"], "Control variates correct client drift in heterogeneous federated learning."),
    ("1211.5063", "On the difficulty of training Recurrent Neural Networks", 2012, ["Razvan Pascanu"],
     "Gradient norm clipping handles exploding gradients that make the loss nan."),
    ("2007.07481", "Tackling the Objective Inconsistency Problem in Heterogeneous Federated Optimization", 2020,
     ["Jianyu Wang"], "Normalised averaging fixes objective inconsistency when clients take different local steps."),
    ("1909.06335", "Measuring the Effects of Non-Identical Data Distribution for Federated Visual Classification",
     2019, ["Tzu-Ming Harry Hsu"], "Server momentum helps federated averaging under non-identical label skew."),
    ("2401.00001", "A Survey of Heterogeneity Benchmarks for Federated Drift", 2024, ["A. Nonymous"],
     "We survey benchmarks of client drift and heterogeneity without proposing a method."),
    ("2402.00002", "Federated Drift Detection with Quantum Sensors", 2024, ["B. Nonymous"],
     "Quantum hardware detects heterogeneity drift in federated networks."),
]


def matches(query: str) -> list[tuple]:
    words = {w.lower() for w in query.replace('"', " ").split() if len(w) > 3}
    return [p for p in CATALOGUE if words & set(f"{p[1]} {p[4]}".lower().replace(":", " ").split())]


def atom(papers: list[tuple]) -> str:
    entries = "".join(
        f"<entry><id>http://arxiv.org/abs/{pid}v2</id><updated>{year}-02-01T00:00:00Z</updated>"
        f"<published>{year}-01-01T00:00:00Z</published><title>{escape(title)}</title>"
        f"<summary>{escape(abstract)}</summary>"
        + "".join(f"<author><name>{escape(a)}</name></author>" for a in authors)
        + f'<link href="http://arxiv.org/abs/{pid}v2" rel="alternate" type="text/html"/>'
        '<arxiv:primary_category term="cs.LG"/><category term="cs.LG"/></entry>'
        for pid, title, year, authors, abstract in papers
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><feed xmlns="http://www.w3.org/2005/Atom" '
        'xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" xmlns:arxiv="http://arxiv.org/schemas/atom">'
        f"<title>query</title><opensearch:totalResults>{len(papers)}</opensearch:totalResults>"
        f"<opensearch:startIndex>0</opensearch:startIndex><opensearch:itemsPerPage>{len(papers)}"
        f"</opensearch:itemsPerPage>{entries}</feed>"
    )


def openalex(papers: list[tuple]) -> dict:
    def inverted(text: str) -> dict:
        index: dict[str, list[int]] = {}
        for position, word in enumerate(text.split()):
            index.setdefault(word, []).append(position)
        return index

    results = [
        {
            "id": f"https://openalex.org/W{pid.replace('.', '')}",
            "display_name": title,
            "title": title,
            "publication_year": year,
            "doi": f"https://doi.org/10.48550/arxiv.{pid}",
            "authorships": [{"author": {"display_name": a}} for a in authors],
            "abstract_inverted_index": inverted(abstract),
        }
        for pid, title, year, authors, abstract in papers
    ]
    return {"meta": {"count": len(results), "page": 1, "per_page": 25}, "results": results}


def semanticscholar(papers: list[tuple]) -> dict:
    data = [
        {
            "paperId": f"s2-{pid}",
            "title": title,
            "year": year,
            "authors": [{"authorId": str(i), "name": a} for i, a in enumerate(authors)],
            "abstract": abstract,
            "externalIds": {"ArXiv": pid},
            "url": f"https://www.semanticscholar.org/paper/s2-{pid}",
        }
        for pid, title, year, authors, abstract in papers
    ]
    return {"total": len(data), "offset": 0, "data": data}


class LiteratureServer:
    def __init__(self, fail: tuple[str, ...] = ()) -> None:
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802 (http.server's naming)
                url = urlparse(self.path)
                params = {k: v[0] for k, v in parse_qs(url.query).items()}
                server.requests.append(self.path)
                if url.path == "/api/query":
                    source, query = "arxiv", params.get("search_query", "")
                    limit = int(params.get("max_results", 10))
                elif url.path == "/works":
                    source, query = "openalex", params.get("search", "")
                    limit = int(params.get("per-page", 25))
                elif url.path == "/graph/v1/paper/search":
                    source, query = "semanticscholar", params.get("query", "")
                    limit = int(params.get("limit", 10))
                else:
                    return self._send(404, "application/json", b'{"error": "not found"}')
                if source in fail:
                    return self._send(500, "application/json", b'{"error": "scripted failure"}')
                papers = matches(query)[:limit]
                if source == "arxiv":
                    return self._send(200, "application/atom+xml", atom(papers).encode())
                body = openalex(papers) if source == "openalex" else semanticscholar(papers)
                return self._send(200, "application/json", json.dumps(body).encode())

            def _send(self, status, kind, data):
                self.send_response(status)
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def environment(self) -> dict[str, str]:
        """The variables that point afr's literature clients here."""
        return {
            "AFR_LITERATURE": "online",
            "AFR_ARXIV_URL": f"{self.base}/api/query",
            "AFR_OPENALEX_URL": self.base,
            "AFR_SEMANTICSCHOLAR_URL": self.base,
            "AFR_ARXIV_DELAY": "0",
        }

    def __enter__(self) -> LiteratureServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
