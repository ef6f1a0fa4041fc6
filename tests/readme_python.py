"""Run the ```pycon examples of README.md or a manual page against a running bridge; standard library only.

    python tests/readme_python.py README.md http://127.0.0.1:PORT

Used by tests/test_readme.py (in the test environment) and by
tests/test_client_install.py (in a fresh venv holding only the client), so it
imports nothing from this repository.  `http://localhost:8000` in the examples
is replaced by the given URL; output must match what the page shows.  Each
block runs in a namespace of its own, so each stands alone as a reader pastes
it; blocks inside content tabs (indented) are found too.
"""

from __future__ import annotations

import doctest
import re
import sys
import textwrap


def pycon_blocks(page: str, fence: str = "pycon") -> list[str]:
    """The blocks fenced ```pycon (or ```pycon numpy, for the examples that need NumPy), dedented."""
    found = re.findall(rf"^( *)```{re.escape(fence)}\n(.*?)^\1```", page, flags=re.S | re.M)
    return [textwrap.dedent(body) if indent else body for indent, body in found]


def run_examples(page: str, url: str, fence: str = "pycon", name: str = "README.md") -> tuple[int, int, str]:
    """(failed, attempted, report) of a page's Python examples, each block run on its own, in page order."""
    report: list[str] = []
    failed = attempted = 0
    for number, block in enumerate(pycon_blocks(page, fence), 1):
        text = block.replace("http://localhost:8000", url)
        test = doctest.DocTestParser().get_doctest(text, {}, f"{name} (pycon block {number})", name, 0)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        runner.run(test, out=report.append)
        result = runner.summarize(verbose=False)
        failed += result.failed
        attempted += result.attempted
    return failed, attempted, "".join(report)


if __name__ == "__main__":
    failed, attempted, report = run_examples(open(sys.argv[1], encoding="utf-8").read(), sys.argv[2])
    sys.stdout.write(report)
    print(f"{attempted - failed} passed, {failed} failed")
    sys.exit(1 if failed or not attempted else 0)
