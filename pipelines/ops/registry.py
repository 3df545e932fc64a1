"""The champion registry as Git tags (GTO): no file to remember to commit.

Each judged challenger of a model becomes a GTO *version* of the artifact named after the
model (``dvc.yaml`` ``artifacts:``): an annotated tag ``<model>@v0.0.N`` whose message holds
the judgement (decision, metric, value, champion value, margin, reason, fingerprint) and, on
its last line, the whole entry as JSON (``rnnflow-judgement: {...}``) — what retraining reads
back to find the champion, the judged fingerprints (idempotence) and the history. A
promotion also assigns the stage (``<model>#champion#N``, the judgement in its message).

    gto show                      # every model: latest version and its champion
    gto history mnist_logreg      # registrations and assignments, newest first
    gto show mnist_logreg#champion --ref
    git push --tags               # tags (and the commits they point at) reach the remote

GTO allows one version of an artifact per commit, and retraining usually judges a workspace
with uncommitted results (``dvc repro`` rewrote ``dvc.lock`` and the metrics). A version is
therefore registered at HEAD only when the workspace is clean and HEAD has no version of the
model yet; otherwise at a *snapshot commit*: HEAD's tree plus the workspace's tracked
changes (and ``dvc.lock``, ``params.yaml``, ``metrics/<model>.json``), parent HEAD, on no
branch — the tag keeps it. The branch, the index and the working tree are not touched, and
``dvc artifacts get . <model> --stage champion`` finds the judged weights through that
commit's ``dvc.lock`` (once ``dvc push`` has sent them to the remote).
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from pipelines.ops import workspace as W

STAGE = "champion"
MARKER = "rnnflow-judgement: "
FALLBACK_IDENT = ("rnnflow retrain", "retrain@rnnflow.invalid")
SUMMARY_KEYS = (
    "decision",
    "metric",
    "value",
    "champion_value",
    "margin",
    "reason",
    "fingerprint",
    "dvc_lock",
    "commit",
    "dirty",
    "snapshot",
    "time",
)


def _counter(tag: str) -> int:
    """N of an incremental GTO tag ``name#stage#N`` (0 for a simple tag)."""
    m = re.search(r"#(\d+)$", tag or "")
    return int(m.group(1)) if m else 0


def judgement_message(title: str, entry: dict[str, Any], with_json: bool = True) -> str:
    """An annotated tag message: a title, ``key: value`` lines, then the entry as JSON."""
    lines = [title, ""]
    lines += [f"{k}: {entry.get(k)}" for k in SUMMARY_KEYS if k in entry]
    if with_json:
        lines += ["", MARKER + json.dumps(entry, sort_keys=True, default=str)]
    return "\n".join(lines) + "\n"


def parse_judgement(message: str | None) -> dict[str, Any] | None:
    """The entry a :func:`judgement_message` carries (None: a version registered by hand)."""
    for line in reversed((message or "").splitlines()):
        if line.startswith(MARKER):
            try:
                return json.loads(line[len(MARKER) :])
            except ValueError:
                return None
    return None


class GitTagRegistry:
    """Champion and judgements of each model, read from and written to GTO tags in ``root``."""

    def __init__(self, root: Path, stage: str = STAGE):
        self.root = Path(root)
        self.stage = stage
        if W.git_head(self.root)[0] is None:
            raise W.ConfigError(
                f"{self.root} is not a git repository with a commit: the "
                f"champion registry is git tags (GTO); run `git init` and "
                f"commit the project first"
            )

    # --- reading -----------------------------------------------------------------------

    def versions(self, model: str) -> list[dict[str, Any]]:
        """Active registered versions of ``model``, oldest (lowest SemVer) first, as GTO
        shows them (``gto show <model> --json``), each with ``entry``: its judgement."""
        from gto import api
        from gto.exceptions import ArtifactNotFound
        from gto.versions import SemVer

        try:
            found = api.show(
                str(self.root),
                model,
                registered_only=True,
                assignments_per_version=-1,
                versions_per_stage=-1,
            )
        except ArtifactNotFound:  # no tag of this model yet
            return []
        found = sorted(found, key=lambda v: SemVer(v["version"]))
        for v in found:
            reg = (v.get("registrations") or [{}])[-1]
            v["tag"] = reg.get("tag")
            v["entry"] = parse_judgement(reg.get("message"))
        return found

    def _entry(self, v: dict[str, Any]) -> dict[str, Any]:
        entry = dict(
            v["entry"]
            or {
                "decision": None,
                "fingerprint": None,
                "value": None,
                "reason": "registered outside retraining",
            }
        )
        entry.update(version=v["version"], tag=v["tag"], registered_at=v["commit_hexsha"])
        return entry

    def history(self, model: str) -> list[dict[str, Any]]:
        """Every registered version's judgement, oldest first."""
        return [self._entry(v) for v in self.versions(model)]

    def champion(self, model: str) -> dict[str, Any] | None:
        """The judgement of the version the stage was assigned to last (and not unassigned
        since).

        "Last" by the incremental tag counter GTO gives every assignment of an artifact
        (``#champion#N``), so a hand-made rollback (``gto assign``) counts, and two
        assignments in the same second (tag times have 1 s resolution) are still ordered.
        """
        best, best_n = None, -1
        for v in self.versions(model):
            for vs in v.get("stages") or []:
                if vs.get("stage") != self.stage or not vs.get("is_active"):
                    continue
                n = max((_counter(a.get("tag")) for a in vs.get("assignments") or []), default=0)
                if n > best_n:
                    best, best_n = v, n
        return self._entry(best) if best else None

    # --- writing -----------------------------------------------------------------------

    def ident(self) -> tuple[str, str]:
        """(name, email) for tags and snapshot commits: git's own, else a fixed one."""
        out = W.git(self.root, "var", "GIT_COMMITTER_IDENT", check=False)
        m = re.match(r"^(.*?) <(.*?)> \d+", out)
        return (m.group(1), m.group(2)) if m and m.group(1) else FALLBACK_IDENT

    def snapshot(self, model: str, title: str) -> str:
        """A commit of the workspace as judged (tracked files), parent HEAD, on no branch."""
        name, email = self.ident()
        ident = {
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email,
        }
        real_index = Path(
            W.git(self.root, "rev-parse", "--path-format=absolute", "--git-path", "index")
        )
        with tempfile.TemporaryDirectory(prefix="rnnflow-snapshot-") as tmp:
            index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            if real_index.exists():  # keeps git's stat cache: only changed files are hashed
                Path(index["GIT_INDEX_FILE"]).write_bytes(real_index.read_bytes())
            else:
                W.git(self.root, "read-tree", "HEAD", env=index)
            W.git(self.root, "add", "-u", env=index)
            wanted = [
                p
                for p in ("dvc.lock", "params.yaml", f"metrics/{model}.json")
                if (self.root / p).exists()
            ]
            ignored = set(W.git(self.root, "check-ignore", *wanted, check=False).split())
            if tracked := [p for p in wanted if p not in ignored]:
                W.git(self.root, "add", "--", *tracked, env=index)
            tree = W.git(self.root, "write-tree", env=index)
        return W.git(self.root, "commit-tree", tree, "-p", "HEAD", "-m", title, env=ident)

    def wait_past(self, prefix: str) -> None:
        """Wait until the clock is past the second of the latest tag named ``prefix*``.

        Git tag times have 1 s resolution, and ``gto show`` and ``dvc artifacts get
        --stage`` order versions and assignments by them: two in the same second would be
        a tie they break arbitrarily. (Scheduled runs are minutes apart: no wait there.)
        """
        out = W.git(
            self.root,
            "for-each-ref",
            "--format=%(taggerdate:unix)",
            f"refs/tags/{prefix}*",
            check=False,
        )
        last = max((int(t) for t in out.split() if t.isdigit()), default=0)
        while time.time() < last + 1:
            time.sleep(min(0.05, last + 1 - time.time() + 0.001))

    def record(self, model: str, entry: dict[str, Any]) -> dict[str, Any]:
        """Register the judged challenger as a new version; assign the stage if promoted.

        Returns the entry as read back (with ``version``, ``tag``, ``registered_at``).
        """
        from gto import api

        entry = dict(entry)
        lock = self.root / "dvc.lock"
        if lock.exists() and "dvc_lock" not in entry:
            import hashlib

            entry["dvc_lock"] = "sha256:" + hashlib.sha256(lock.read_bytes()).hexdigest()
        fp = entry.get("fingerprint")
        # At HEAD when the workspace is clean and HEAD has no version of the model yet.
        rev = W.git(self.root, "rev-parse", "HEAD")
        entry["snapshot"] = bool(entry.get("dirty")) or any(
            v["commit_hexsha"] == rev for v in self.versions(model)
        )
        if entry["snapshot"]:
            rev = self.snapshot(
                model,
                f"rnnflow retrain snapshot: {model} challenger {fp}\n\n"
                f"The workspace as retraining judged it: HEAD plus its "
                f"uncommitted tracked changes. On no branch; the version "
                f"tag of {model} keeps it.",
            )
        name, email = self.ident()
        self.wait_past(f"{model}@")
        title = f"retrain {model}: {entry.get('decision')} (challenger {fp})"
        event = api.register(
            str(self.root),
            model,
            rev,
            message=judgement_message(title, entry),
            author=name,
            author_email=email,
        )
        version = event.version
        if entry.get("decision") == "promoted":
            self.wait_past(f"{model}#{self.stage}#")
            api.assign(
                str(self.root),
                model,
                self.stage,
                version=version,
                message=judgement_message(
                    f"retrain {model}: {version} is the {self.stage} (challenger {fp})",
                    entry,
                    with_json=False,
                ),
                author=name,
                author_email=email,
            )
        return next(e for e in self.history(model) if e["version"] == version)
