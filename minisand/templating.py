"""jinja2 rendering of the shipped templates (StrictUndefined: a missing value is an error, not a blank)."""

from __future__ import annotations

import functools
import json
from typing import Any

import jinja2

from minisand.resources import data_dir


def _toml_str(value: object) -> str:
    """A TOML basic string (JSON string escaping is a valid subset of TOML's)."""
    return json.dumps(str(value))


def _yaml_str(value: object) -> str:
    return json.dumps(str(value))


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(data_dir("templates"))),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - these are config files, not HTML
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["toml_str"] = _toml_str
    env.filters["yaml_str"] = _yaml_str
    env.filters["json"] = json.dumps
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)
