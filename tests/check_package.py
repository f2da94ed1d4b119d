"""``make package``: build the sdist and the wheel, then check what they carry.

Run as ``python tests/check_package.py`` from the repository root (the dev extra
installs ``build`` and a setuptools that knows ``license-files``). It fails,
naming each problem, when:

- the build warns about the license metadata, or about anything deprecated;
- the wheel lacks ``py.typed``, the LICENSE, the MIT license expression, the
  classifiers or the project URLs, or carries the tests;
- the sdist lacks the LICENSE, or carries tests that cannot be collected there
  (a test module without its ``conftest.py``, helpers or data).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from email.parser import Parser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

WANTED_CLASSIFIERS = [
    *(f"Programming Language :: Python :: 3.{minor}" for minor in (10, 11, 12, 13)),
    "Typing :: Typed",
    "Topic :: Office/Business :: Financial :: Investment",
    "Framework :: AsyncIO",
]
# What a copy of a tree that is not a git checkout leaves out.
NOT_SOURCE = (".venv", "build", "dist", "_build", "*.egg-info", "__pycache__", ".*_cache")
# Lines of a build's output that mean the metadata needs attention.
BAD_OUTPUT = re.compile(r"deprecat|license.*warn|warn.*license", re.IGNORECASE)


def clean_copy(target: Path) -> Path:
    """The project's files (tracked or new, not ignored) copied to ``target``.

    Built in place, setuptools would reuse the file list of a stale
    ``*.egg-info`` and could hide a file that MANIFEST.in no longer ships.
    """
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    if listed.returncode != 0:  # not a git checkout (an unpacked sdist): copy it whole
        shutil.copytree(ROOT, target, ignore=shutil.ignore_patterns(*NOT_SOURCE))
        return target
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def build(source: Path, outdir: Path) -> list[str]:
    """Build both distributions into ``outdir``; the output lines that are warnings."""
    command = [sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel"]
    result = subprocess.run(
        [*command, "--outdir", str(outdir), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise SystemExit(f"the build failed:\n{output}")
    return [line.strip() for line in output.splitlines() if BAD_OUTPUT.search(line)]


def check_wheel(wheel: Path) -> list[str]:
    problems: list[str] = []
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(metadata_name).decode())
    for wanted in ("polygon/py.typed", "polygon/__main__.py", "polygon/cli.py"):
        if wanted not in names:
            problems.append(f"wheel: no {wanted}")
    if not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
        problems.append("wheel: no LICENSE in .dist-info/licenses/")
    if any(n.startswith("tests/") for n in names):
        problems.append("wheel: carries tests/")
    if metadata.get("License-Expression") != "MIT":
        problems.append(f"wheel: License-Expression is {metadata.get('License-Expression')!r}")
    if metadata.get("License"):
        problems.append("wheel: the deprecated License field is set")
    classifiers = metadata.get_all("Classifier") or []
    problems += [f"wheel: no classifier {c!r}" for c in WANTED_CLASSIFIERS if c not in classifiers]
    urls = " ".join(metadata.get_all("Project-URL") or [])
    problems += [
        f"wheel: no {label} URL" for label in ("Documentation", "Source") if label not in urls
    ]
    if not metadata.get_all("Author") and not metadata.get_all("Author-email"):
        problems.append("wheel: no author")
    if "parquet" not in (metadata.get_all("Provides-Extra") or []):
        problems.append("wheel: no parquet extra")
    if not (metadata.get_payload() or "").lstrip().startswith("# polygon-streaming"):
        problems.append("wheel: the long description is not the README")
    return problems


def check_readme(readme: str) -> list[str]:
    """The README is the PyPI page: it starts with pip install and warns what a pip user needs."""
    problems: list[str] = []
    first_block = readme.split("```")[1] if "```" in readme else ""
    if "pip install polygon-streaming" not in first_block:
        problems.append("README: its first code block is not `pip install polygon-streaming`")
    wanted = ["make demo", "make test", "polygon-api-client", "await main()", "[parquet]"]
    problems += [f"README: no mention of {text!r}" for text in wanted if text not in readme]
    if readme.index("polygon-api-client") > readme.index("## "):
        problems.append("README: the shared import name is not said near the top")
    return problems


def check_sdist(sdist: Path, workdir: Path) -> list[str]:
    problems: list[str] = []
    with tarfile.open(sdist) as archive:
        archive.extractall(workdir, filter="data")
    (top,) = workdir.iterdir()
    for wanted in (
        "LICENSE",
        "polygon/py.typed",
        "tests/conftest.py",
        "tests/_harness.py",
        "tests/_brokers.py",
        "tests/data/websocket-api.json",
        "examples/record_to_file.py",
    ):
        if not (top / wanted).is_file():
            problems.append(f"sdist: no {wanted}")
    # The tests collect there: each module finds its conftest, helpers and data.
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=top,
        capture_output=True,
        text=True,
        check=False,
    )
    if collected.returncode != 0:
        tail = "\n".join(collected.stdout.splitlines()[-15:])
        problems.append(f"sdist: pytest cannot collect its tests:\n{tail}\n{collected.stderr}")
    return problems


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="polygon-package-") as tmp:
        outdir = Path(tmp) / "dist"
        source = clean_copy(Path(tmp) / "source")
        problems = [f"build: {line}" for line in build(source, outdir)]
        (wheel,) = outdir.glob("*.whl")
        (sdist,) = outdir.glob("*.tar.gz")
        problems += check_wheel(wheel)
        problems += check_readme((ROOT / "README.md").read_text(encoding="utf-8"))
        unpacked = Path(tmp) / "sdist"
        unpacked.mkdir()
        problems += check_sdist(sdist, unpacked)
    if problems:
        sys.stderr.write("package check failed:\n  " + "\n  ".join(problems) + "\n")
        return 1
    sys.stdout.write(f"package check: {wheel.name} and {sdist.name} are complete\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
