"""Run README's ```pycon examples as one doctest against a running bridge; standard library only.

    python tests/readme_python.py README.md http://127.0.0.1:PORT

Used by tests/test_readme.py (in the test environment) and by
tests/test_client_install.py (in a fresh venv holding only the client), so it
imports nothing from this repository.  `http://localhost:8000` in the examples
is replaced by the given URL; output must match what README shows.
"""

from __future__ import annotations

import doctest
import re
import sys


def pycon_blocks(readme: str, fence: str = "pycon") -> list[str]:
    """The blocks fenced ```pycon (or ```pycon numpy, for the examples that need NumPy)."""
    return re.findall(rf"```{re.escape(fence)}\n(.*?)```", readme, flags=re.S)


def run_examples(readme: str, url: str, fence: str = "pycon") -> tuple[int, int, str]:
    """(failed, attempted, report) of the README's Python examples, run in order in one namespace."""
    text = "\n".join(pycon_blocks(readme, fence)).replace("http://localhost:8000", url)
    test = doctest.DocTestParser().get_doctest(text, {}, "README.md (pycon examples)", "README.md", 0)
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test, out=report.append)
    result = runner.summarize(verbose=False)
    return result.failed, result.attempted, "".join(report)


if __name__ == "__main__":
    failed, attempted, report = run_examples(open(sys.argv[1], encoding="utf-8").read(), sys.argv[2])
    sys.stdout.write(report)
    print(f"{attempted - failed} passed, {failed} failed")
    sys.exit(1 if failed or not attempted else 0)
