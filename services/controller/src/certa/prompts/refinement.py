"""The refinement prompt template of integrated parallel–sequential sampling (see `certa.core.strategies.refinement`).

The default text ships as `refine.txt` next to this module: a `string.Template` with `$question` and `$attempts`.
A deployment may use its own file instead; it is checked when it is loaded.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from certa.core.strategies.refinement import Refinement, validate_refinement

DEFAULT_TEMPLATE_FILE = "refine.txt"


def default_refinement_template() -> str:
    return resources.files(__package__).joinpath(DEFAULT_TEMPLATE_FILE).read_text()


def load_refinement_template(path: Path | None = None, field: str = "refinement") -> str:
    """The template in `path` (the default one when None); `InvalidArgument` naming `field.template` when it lacks
    its placeholders."""
    template = default_refinement_template() if path is None else path.read_text()
    validate_refinement(Refinement(template), field)
    return template
