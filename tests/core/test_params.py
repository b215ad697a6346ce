"""The parameter spec shared by CLI and plugin agrees with the core functions."""

import inspect

import pytest

from core import superpixels
from core.params import SUPERPIXELS


@pytest.mark.parametrize("method", sorted(SUPERPIXELS))
def test_spec_defaults_are_the_core_defaults(method):
    signature = inspect.signature(getattr(superpixels, method))
    keyword_only = {
        name: p.default
        for name, p in signature.parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in ("mask", "seed")
    }
    spec = {p.name: p.default for p in SUPERPIXELS[method]}
    assert spec == keyword_only


@pytest.mark.parametrize("method", sorted(SUPERPIXELS))
def test_keys_are_upper_snake_of_names(method):
    for param in SUPERPIXELS[method]:
        assert param.key == param.name.upper()
        assert param.option == "--" + param.name.replace("_", "-")
        assert param.help.endswith((".", ")"))
