"""What is installed, checked where it breaks: torch and torchvision must be built for each other.

A CPU torch beside PyPI's torchvision (what installing torch from PyTorch's CPU index and then a
package that pulls torchvision from PyPI gives) installs without a word, but `import torchvision`
then fails with "operator torchvision::nms does not exist" — a 40-line traceback from whichever
command first imports it. `pair_problem` turns that error into two lines naming both versions and
the fix; the command line (`ganbench.cli.main`) says them instead of the traceback.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

# Signs, in an exception's text, that torchvision's compiled operators do not fit the torch beside it.
_MISMATCH_SIGNS = ("torchvision::", "torchvision/_C", "torchvision._C", "Couldn't load custom C++ ops")


def _installed(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def matching_torchvision(torch_version: str) -> str | None:
    """The torchvision release built for torch `torch_version` (torch 2.N ↔ torchvision 0.(N+15)), or None."""
    try:
        major, minor = (int(part) for part in torch_version.split("+")[0].split(".")[:2])
    except ValueError:
        return None
    return f"0.{minor + 15}" if major == 2 else None


def pair_problem(err: BaseException) -> str | None:
    """Two lines when `err` says that torchvision does not fit the installed torch, else None."""
    text = f"{type(err).__name__}: {err}"
    if not any(sign in text for sign in _MISMATCH_SIGNS):
        return None
    torch_version, vision_version = _installed("torch"), _installed("torchvision")
    wanted = matching_torchvision(torch_version)
    base = torch_version.split("+")[0]
    first = text.splitlines()[0][:160]
    return (f"torchvision {vision_version} does not fit torch {torch_version} ({first}).\n"
            f"Install the two from one index, e.g. pip install --force-reinstall torch=={base} "
            f"torchvision=={wanted + '.*' if wanted else '<the matching release>'} (both from PyPI, or both from "
            "https://download.pytorch.org/whl/cpu).")
