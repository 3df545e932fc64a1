"""Rewrite each dvc.yaml stage's code deps to exactly its import closure.

Run from the project root after moving or adding modules: ``python tests/sync_deps.py``.
The closure is the one ``tests/test_deps.py`` checks (function-local imports count; adapters
and model families loaded by name are added); data deps, ``${item.*}`` entries and folder deps
(``pipelines/models``) are kept. Comments elsewhere in dvc.yaml survive (ruamel round-trip).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path.cwd()))
from ruamel.yaml import YAML

from tests.test_deps import ALL_STAGES, PACKAGES, PROJECT_ROOT, import_closure

yaml = YAML()
yaml.preserve_quotes = True
yaml.width = 100
yaml.indent(mapping=2, sequence=4, offset=2)
doc = yaml.load(Path("dvc.yaml"))
templ_files = set()
for v in doc["vars"]:
    for val in v.values() if isinstance(v, dict) else []:
        for inner in val.values() if isinstance(val, dict) else []:
            if isinstance(inner, dict):
                templ_files.update(str(x) for x in inner.values())
by_group: dict[str, set[str]] = {}
for name, cmd, deps in ALL_STAGES:
    group = name.split("@")[0]
    dirs = [d.resolve() for d in deps if d.resolve().is_dir() and "data" not in d.parts]
    by_group.setdefault(group, set()).update(
        str(f.relative_to(PROJECT_ROOT))
        for f in import_closure(cmd)
        if not any(dd in f.parents for dd in dirs)
    )
for group, files in by_group.items():
    st = doc["stages"][group]
    body = st["do"] if "do" in st else st
    deps = body["deps"]
    old = [str(d) for d in deps]

    def is_code(s: str) -> bool:
        """A module, or a package folder (registries: every file of it, new ones too)."""
        return s.endswith(".py") or (s.split("/")[0] in PACKAGES and (PROJECT_ROOT / s).is_dir())

    data = [s for s in old if not is_code(s) and "${item" not in s]
    templ = [s for s in old if "${item" in s]
    dirs = [s for s in old if "${" not in s and is_code(s) and (PROJECT_ROOT / s).is_dir()]
    code = sorted((files - (templ_files if templ else set())) | set(dirs))
    deps.clear()
    deps.ca.items.clear()  # the comment is written anew below: running twice changes nothing
    deps.ca.comment = None
    for s in data + templ + code:
        deps.append(s)
    deps.yaml_set_comment_before_after_key(
        len(data),
        before="the command's import closure "
        "(tests/test_deps.py checks it; tests/sync_deps.py writes it)",
        indent=8 if "do" in st else 6,
    )
yaml.dump(doc, Path("dvc.yaml"))
# ruamel keeps a comment at a list's start on the parent key, where the clear above misses it.
lines = Path("dvc.yaml").read_text().split("\n")
Path("dvc.yaml").write_text(
    "\n".join(
        line
        for i, line in enumerate(lines)
        if not (i and line == lines[i - 1] and line.lstrip().startswith("#"))
    )
)
