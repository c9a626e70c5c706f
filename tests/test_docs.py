"""The README and docs/: every relative link resolves (files and #anchors), every `phasediag ...` command line in a
code block parses with the CLI's own parser, the README stays short, and the docs describe the tool as it is (no
development history: that goes to CHANGELOG.md)."""

import functools
import re
import shlex
from pathlib import Path

import pytest

from phasediag import cli

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 220
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^\s*(```|~~~)")
COMMAND = re.compile(r"^\s*(\$ )?([A-Z_][A-Z0-9_]*=\S+\s+)*(\.venv/bin/)?phasediag(\s|$)")
# What a page may write in place of a value: "..." for "more options", and --accelerator gpu on a machine without one.
PLACEHOLDERS = {"...": None}
# Development history: numbered sessions or rounds of work, issue numbers, dated measurements, "the default until".
HISTORY = [
    (re.compile(r"\bsessions?\b", re.I), "a session"),
    (re.compile(r"(?<![\w&/])#\d+\b"), "an issue number"),
    (re.compile(r"\bissues? \d+", re.I), "an issue number"),
    (re.compile(r"\brounds? \d+\b|\brounds? of work\b", re.I), "a numbered round of work"),
    (re.compile(r"\b20\d\d-\d\d-\d\d\b"), "a date"),
    (re.compile(r"\b(the )?default until\b|\b(previous|earlier|old) default\b|\bused to be\b", re.I), "history"),
    (re.compile(r"\.\./shared/|DESIGN\.md"), "the spec outside the repository"),
]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _prose_and_code(path: Path) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """The file's lines outside and inside fenced code blocks, with their line numbers."""
    prose, code, fenced = [], [], False
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        (code if fenced else prose).append((number, line))
    return prose, code


def _anchors(path: Path) -> set[str]:
    prose, _ = _prose_and_code(path)
    return {_slug(line.lstrip("#")) for _, line in prose if re.match(r"#{1,6} ", line)}


def _links(path: Path) -> list[tuple[int, str]]:
    prose, _ = _prose_and_code(path)
    return [(number, target) for number, line in prose for target in LINK.findall(line)]


def _commands(path: Path) -> list[tuple[int, list[str]]]:
    """`phasediag ...` lines of the code blocks (a `\\` continues a line; comments and VAR=value prefixes dropped)."""
    _, code = _prose_and_code(path)
    found, pending = [], ""
    for number, line in code:
        line = pending + line
        if line.rstrip().endswith("\\"):
            pending = line.rstrip()[:-1] + " "
            continue
        pending = ""
        if not COMMAND.match(line):
            continue
        words = [w for w in shlex.split(line.replace("$ ", "", 1), comments=True) if PLACEHOLDERS.get(w, w) is not None]
        while not words[0].endswith("phasediag"):  # VAR=value prefixes
            words = words[1:]
        found.append((number, words[1:]))
    return found


def _parse(argv: list[str]) -> None:
    """cli.parse, with --help's exit 0 as success and `--accelerator gpu` parsed as `auto` where CUDA is missing."""
    import torch

    if not torch.cuda.is_available():
        argv = [("auto" if word == "gpu" and before == "--accelerator" else word) for before, word in zip(["", *argv], argv)]
    try:
        cli.parse(argv)
    except SystemExit as done:
        if done.code != 0 or "--help" not in argv:
            raise


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page):
    broken = []
    for number, target in _links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (page.parent / file_part).resolve() if file_part else page
        if ROOT not in linked.parents and linked != ROOT:
            broken.append(f"{page.name}:{number}: {target} lies outside the repository")
        elif not linked.exists():
            broken.append(f"{page.name}:{number}: {target} does not exist")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"{page.name}:{number}: {target}: no heading with anchor #{anchor}")
    assert not broken, "\n".join(broken)


def test_every_docs_page_is_reachable_from_the_readme():
    reached, todo = {README}, [README]
    while todo:
        page = todo.pop()
        for _, target in _links(page):
            file_part = target.partition("#")[0]
            linked = (page.parent / file_part).resolve()
            if file_part.endswith(".md") and linked.is_file() and linked not in reached:
                reached.add(linked)
                todo.append(linked)
    unreached = [p.relative_to(ROOT).as_posix() for p in PAGES if p.resolve() not in reached]
    assert not unreached, f"not reachable from README.md by links: {unreached}"


@pytest.fixture(scope="module")
def one_parser():
    """The CLI's parser built once for the module's many command lines (building it is most of a parse's time)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "build_parser", functools.cache(cli.build_parser))
        yield


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_command_lines_parse(page, monkeypatch, one_parser):
    monkeypatch.chdir(ROOT)  # specs and folders are named relative to the repository, as the docs run them
    failures = []
    for number, argv in _commands(page):
        try:
            _parse(argv)
        except (Exception, SystemExit) as error:  # noqa: BLE001: every failure is reported with its line
            failures.append(f"{page.name}:{number}: phasediag {shlex.join(argv)}\n    {type(error).__name__}: {error}")
    assert not failures, "\n".join(failures)


def test_the_docs_hold_command_lines():
    """The command test above checks something: the README's quickstart and the pages hold many commands."""
    assert len(_commands(README)) >= 3
    assert sum(len(_commands(page)) for page in PAGES) >= 20


def test_readme_is_short():
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; at most {README_MAX_LINES} (move detail to docs/)"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_development_history(page):
    found = []
    for number, line in enumerate(page.read_text().splitlines(), 1):
        for pattern, what in HISTORY:
            match = pattern.search(line)
            if match:
                found.append(f"{page.name}:{number}: {what}: {match.group(0)!r} in {line.strip()[:120]!r}")
    assert not found, "history belongs in CHANGELOG.md:\n" + "\n".join(found)


def test_the_checks_catch_what_they_should(tmp_path):
    """The helpers on a page with a broken link, an unparsable command and history."""
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[a](missing.md) [b](#title) [c](#nothing)\n\n```\nphasediag run --depht 4  # typo\n"
                    "phasediag search \\\n  --arch fcn\n```\nFixed in session 3 (#12).\n")  # fmt: skip
    assert _links(page) == [(3, "missing.md"), (3, "#title"), (3, "#nothing")]
    assert _anchors(page) == {"title"}
    assert _commands(page) == [(6, ["run", "--depht", "4"]), (8, ["search", "--arch", "fcn"])]
    with pytest.raises(Exception):
        cli.parse(["run", "--depht", "4"])
    text = page.read_text()
    assert sum(bool(pattern.search(text)) for pattern, _ in HISTORY) == 2
    assert _slug("The gallery's figures") == "the-gallerys-figures"
    assert _slug("Batched runs (`--batch_c`) and the GPU") == "batched-runs---batch_c-and-the-gpu"
