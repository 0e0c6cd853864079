"""robolearn: robot learning in JAX, from recorded episodes to a safe robot.

Importing robolearn needs no GPU, no display and no ROS.

The model and robot packages are imported as `robolearn.world_models`, `robolearn.reward_models`
and `robolearn.hardware`: one distribution installs one top-level name, so nothing of ours can
shadow (or be shadowed by) another project's `hardware` in site-packages. The source tree keeps
them as folders beside `robolearn/` (the project's layout); the wheel installs them inside the
`robolearn` package (pyproject.toml, `force-include`), and in a source checkout (an editable
install, or tests run from the tree) the finder below maps the three names to those folders.
"""

import importlib.abc
import importlib.util
import sys
from pathlib import Path

__version__ = "0.1.0"

BESIDE = ("world_models", "reward_models", "hardware")


class _BesideFinder(importlib.abc.MetaPathFinder):
    """Finds `robolearn.<name>` for the BESIDE names in the folder beside this package."""

    def __init__(self, root: Path):
        self.root = root

    def find_spec(self, fullname, path=None, target=None):
        package, _, name = fullname.partition(".")
        if package != __name__ or name not in BESIDE:
            return None
        folder = self.root / name
        return importlib.util.spec_from_file_location(
            fullname, folder / "__init__.py", submodule_search_locations=[str(folder)]
        )


def _install_finder() -> None:
    here = Path(__file__).resolve().parent
    if all((here / name).is_dir() for name in BESIDE):
        return  # installed from the wheel: the packages are inside robolearn/
    if not any(isinstance(f, _BesideFinder) for f in sys.meta_path):
        sys.meta_path.append(_BesideFinder(here.parent))


_install_finder()
