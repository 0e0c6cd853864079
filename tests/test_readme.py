"""README.md and docs/: the two set-up commands open the README and CI runs the second verbatim;
every link stays inside the repository and resolves; every `robolearn ...` command in a bash block
parses with the CLI as it is."""

import contextlib
import io
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

from robolearn.cli import parse

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCED = re.compile(r"^ *```.*?^ *```", re.S | re.M)
BASH = re.compile(r"^ *```bash\n(.*?)^ *```", re.S | re.M)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]*)[^)]*\)")
HEADING = re.compile(r"^(#{1,6}) +(.+?) *#* *$", re.M)
VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
# `uv run` options that take a value: `uv run --extra ros robolearn ...`
UV_OPTIONS_WITH_VALUE = {"--extra", "--with", "--python", "--project", "--directory", "--group"}
SHELL_KEYWORDS = {"do", "done", "then", "else", "fi", "time", "nice"}


def _setup_commands() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block, "README.md has no bash block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_exactly_two_commands():
    install_and_run, tests = _setup_commands()
    assert "robolearn " in install_and_run and "install uv" in install_and_run
    assert "pytest" in tests


def test_ci_runs_the_readme_set_up_commands_in_order():
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    install_and_run, tests = _setup_commands()
    assert install_and_run in ci and tests in ci
    assert ci.index(install_and_run) < ci.index(tests)


def _prose(text: str) -> str:
    """The text without fenced blocks and inline code, where brackets are not links."""
    return re.sub(r"`[^`\n]*`", "", FENCED.sub("", text))


def _anchors(page: Path) -> Iterator[str]:
    """GitHub's heading anchors: lower case, no punctuation, spaces to hyphens, -N on repeats."""
    seen: dict[str, int] = {}
    for match in HEADING.finditer(FENCED.sub("", page.read_text())):
        slug = re.sub(r"[^\w\- ]", "", match.group(2).replace("`", "").lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        yield slug if count == 0 else f"{slug}-{count}"


def _link_problems(page: Path) -> list[str]:
    text = page.read_text()
    where = page.relative_to(ROOT)
    problems = [f"{where}: has a web address ({m})" for m in re.findall(r"\w+://\S+", text)]
    if "../shared" in text:
        problems.append(f"{where}: names a path outside the repository (../shared)")
    for target in LINK.findall(_prose(text)):
        path, _, anchor = target.partition("#")
        if not target or re.match(r"^(\w+:|/|~)", target):
            problems.append(f"{where}: link {target!r} is not a relative path in the repository")
            continue
        file = (page.parent / path).resolve() if path else page
        if not file.is_relative_to(ROOT) or not file.exists():
            problems.append(f"{where}: link {target!r}: no such file in the repository")
        elif anchor and (file.suffix != ".md" or anchor not in set(_anchors(file))):
            problems.append(f"{where}: link {target!r}: no heading with that anchor in {path}")
    return problems


def test_docs_link_only_to_files_and_headings_in_the_repository():
    assert (ROOT / "docs" / "README.md") in PAGES
    problems = [problem for page in PAGES for problem in _link_problems(page)]
    assert not problems, "\n".join(problems)


def _segments(line: str) -> list[list[str]]:
    """Simple commands of one shell line, split at ; && || | &."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    segments = [[]]
    for token in lexer:
        if set(token) <= set(";&|"):
            segments.append([])
        else:
            segments[-1].append(token)
    return [s for s in segments if s]


def _robolearn_commands(page: Path) -> list[tuple[str, list[str]]]:
    """(the command as written, argv after `robolearn`) for every `robolearn ...` line in the page's
    bash blocks, also behind `uv run [options]` or continued with a backslash. Shell variables are
    expanded as bash would for the simple forms the docs use: `NAME=value`, `for NAME in A B C`
    (the block is read once per loop value), `set -- $NAME` (positional parameters)."""
    found = []
    for block in BASH.findall(page.read_text()):
        rounds = max((len(values) for values in _loops(block)), default=1)
        for loop_round in range(rounds):
            for command in _block_commands(page, block, loop_round):
                if command not in found:
                    found.append(command)
    return found


def _loops(block: str) -> list[list[str]]:
    """The values of every `for NAME in ...` loop of a bash block."""
    lines = block.replace("\\\n", " ").splitlines()
    segments = [segment for line in lines for segment in _segments(line)]
    return [s[3:] for s in segments if s[:1] == ["for"] and s[2:3] == ["in"] and len(s) > 3]


def _block_commands(page: Path, block: str, loop_round: int) -> list[tuple[str, list[str]]]:
    """The robolearn commands of one bash block, each `for` loop at its `loop_round`-th value."""
    found = []
    env: dict[str, str] = {}
    positional: list[str] = []

    def expand(token: str) -> str:
        def value(match: re.Match) -> str:
            name = match.group(1) or match.group(2)
            if name.isdigit():
                return positional[int(name) - 1]
            assert name in env, f"{page.name}: ${name} is not set in its bash block"
            return env[name]

        return VARIABLE.sub(value, token)

    for line in block.replace("\\\n", " ").splitlines():
        for segment in _segments(line):
            while segment and segment[0] in SHELL_KEYWORDS:
                segment = segment[1:]
            if segment[:1] == ["for"] and segment[2:3] == ["in"] and len(segment) > 3:
                values = segment[3:]
                env[segment[1]] = expand(values[min(loop_round, len(values) - 1)])
                continue
            if segment[:2] == ["set", "--"]:
                positional = " ".join(expand(t) for t in segment[2:]).split()
                continue
            while segment and re.fullmatch(r"\w+=.*", segment[0]):
                name, _, assigned = segment.pop(0).partition("=")
                env[name] = expand(assigned)
            if segment[:2] == ["uv", "run"]:
                segment = segment[2:]
                while segment and segment[0].startswith("-"):
                    segment = segment[2:] if segment[0] in UV_OPTIONS_WITH_VALUE else segment[1:]
            if segment[:1] == ["robolearn"]:
                found.append((" ".join(segment), [expand(token) for token in segment[1:]]))
    return found


def test_every_robolearn_command_in_the_docs_parses():
    commands = {page: _robolearn_commands(page) for page in PAGES}
    assert len(commands[ROOT / "README.md"]) >= 15, "README shows the workstation's commands"
    assert sum(map(len, commands.values())) >= 100
    failures = []
    for page, found in commands.items():
        for written, argv in found:
            stderr = io.StringIO()
            try:
                with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
                    parse(argv)  # exits 2 on a bad command line
            except SystemExit:
                error = stderr.getvalue().strip().splitlines()[-1:] or ["(exit)"]
                failures.append(f"{page.relative_to(ROOT)}: {written}\n    {error[0]}")
    assert not failures, "\n".join(failures)
