"""A loopback stand-in for the Hugging Face Hub's upload endpoints, for tests of :mod:`medreason.hub`.

It answers what ``huggingface_hub.HfApi(endpoint=server.endpoint)`` calls for ``create_repo`` and
``upload_folder``/``create_commit`` over the (non-Xet) LFS protocol: ``POST /api/repos/create``,
``POST /api/validate-yaml``, ``POST /api/models/{repo}/preupload/{rev}``, the LFS batch API
``POST /{repo}.git/info/lfs/objects/batch``, the LFS ``PUT`` of each blob, and
``POST /api/models/{repo}/commit/{rev}`` (NDJSON). Like the Hub, it keeps LFS blobs it has received
even when the commit that was to reference them fails, and answers the batch API with no upload
action for a blob it already holds: that is what makes an interrupted upload resume without sending
the weights again. Requests without ``Authorization: Bearer <token>`` get HTTP 401.

huggingface_hub uploads through Xet storage when ``hf_xet`` is installed; this stand-in speaks the
LFS protocol, so a client under test sets ``huggingface_hub.constants.HF_HUB_DISABLE_XET = True``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeHubServer", "HubRepo"]


@dataclass
class HubRepo:
    """A repository on the stand-in: its visibility, files at the head commit and commit messages."""

    private: bool
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[str] = field(default_factory=list)


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # noqa: S324 - git's object id, not security


class FakeHubServer(ThreadingHTTPServer):
    """The stand-in on ``127.0.0.1`` and a free port, run in a background thread (a context manager).

    Args:
        token: The only token accepted.

    Attributes:
        repos: Repo id -> :class:`HubRepo`.
        blobs: LFS sha256 -> content, kept across failed commits.
        requests: How many requests each route got (``"lfs_put"``, ``"commit"``, ...).
        fail_commits: While > 0, each commit is answered HTTP 500 (and the count decremented): an upload
            that dies after its blobs went up.
    """

    def __init__(self, token: str):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.token = token
        self.repos: dict[str, HubRepo] = {}
        self.blobs: dict[str, bytes] = {}
        self.requests: Counter[str] = Counter()
        self.fail_commits = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        """The base URL to pass as ``HfApi(endpoint=...)``."""
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeHubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: FakeHubServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # keep test output clean

    def _reply(self, status: int, body: Any = None) -> None:
        data = json.dumps(body if body is not None else {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _authorised(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {self.server.token}":
            return True
        self._body()
        self._reply(401, {"error": "Invalid credentials in Authorization header"})
        return False

    def do_PUT(self) -> None:  # noqa: N802 - http.server's name
        match = re.fullmatch(r"/lfs-upload/([0-9a-f]{64})", self.path)
        data = self._body()
        if match is None or hashlib.sha256(data).hexdigest() != match.group(1):
            self._reply(400, {"error": "content does not match its sha256"})
            return
        with self.server._lock:
            self.server.requests["lfs_put"] += 1
            self.server.blobs[match.group(1)] = data
        self._reply(200)

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        if not self._authorised():
            return
        server, path = self.server, self.path.split("?")[0]
        if path == "/api/repos/create":
            payload = json.loads(self._body())
            repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
            server.requests["create_repo"] += 1
            if repo_id in server.repos:
                self._reply(409, {"error": "You already created this model repo", "url": f"{server.endpoint}/{repo_id}"})
                return
            server.repos[repo_id] = HubRepo(private=payload.get("visibility") == "private")
            self._reply(200, {"url": f"{server.endpoint}/{repo_id}", "name": repo_id})
            return
        if path == "/api/validate-yaml":
            self._body()
            self._reply(200, {"errors": [], "warnings": []})
            return
        if match := re.fullmatch(r"/api/models/(.+)/preupload/[^/]+", path):
            repo = server.repos.get(match.group(1))
            payload = json.loads(self._body())
            if repo is None:
                self._reply(404, {"error": "Repository not found"})
                return
            files = []
            for entry in payload["files"]:
                lfs = b"\0" in base64.b64decode(entry["sample"]) or entry["size"] > 10 * 2**20
                current = repo.files.get(entry["path"])
                oid = None if current is None else hashlib.sha256(current).hexdigest() if lfs else _git_blob_sha1(current)
                files.append({"path": entry["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                              "oid": oid})
            self._reply(200, {"files": files})
            return
        if match := re.fullmatch(r"/(.+)\.git/info/lfs/objects/batch", path):
            payload = json.loads(self._body())
            objects = []
            for item in payload["objects"]:
                entry = {"oid": item["oid"], "size": item["size"]}
                if item["oid"] not in server.blobs:  # a blob it holds is not asked for again
                    entry["actions"] = {"upload": {"href": f"{server.endpoint}/lfs-upload/{item['oid']}"}}
                objects.append(entry)
            self._reply(200, {"transfer": "basic", "objects": objects})
            return
        if match := re.fullmatch(r"/api/models/(.+)/commit/[^/]+", path):
            self._commit(match.group(1), self._body())
            return
        self._body()
        self._reply(404, {"error": f"no route {path}"})

    def _commit(self, repo_id: str, body: bytes) -> None:
        server = self.server
        server.requests["commit"] += 1
        repo = server.repos.get(repo_id)
        if repo is None:
            self._reply(404, {"error": "Repository not found"})
            return
        if server.fail_commits > 0:
            server.fail_commits -= 1
            self._reply(500, {"error": "Internal Error - We're working hard to fix this as soon as possible!"})
            return
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        staged = dict(repo.files)
        for line in lines[1:]:
            value = line["value"]
            if line["key"] == "file":
                staged[value["path"]] = base64.b64decode(value["content"])
            elif line["key"] == "lfsFile":
                if value["oid"] not in server.blobs:
                    self._reply(422, {"error": f"LFS object {value['oid']} of {value['path']} was never uploaded"})
                    return
                staged[value["path"]] = server.blobs[value["oid"]]
        repo.files = staged
        repo.commits.append(lines[0]["value"]["summary"])
        oid = hashlib.sha1(json.dumps(sorted(staged)).encode() + str(len(repo.commits)).encode()).hexdigest()  # noqa: S324
        self._reply(200, {"commitUrl": f"{server.endpoint}/{repo_id}/commit/{oid}", "commitOid": oid})
