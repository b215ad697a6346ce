"""Layout of the engine: small files and short functions, so that a newcomer can read them.

- No file of core/ is over :data:`MAX_FILE_LINES` lines (the aim is about 700).
- No function of core/ has a body (its code without the docstring) over
  :data:`MAX_BODY_LINES` lines (the aim is about 100), except the numba kernels, whose
  loops stay whole so that numba compiles them into one function.
"""

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "core"
MAX_FILE_LINES = 750
MAX_BODY_LINES = 110
#: Decorators that make a function a numba kernel (``@numba.njit(...)``, ``@intrinsic``).
KERNEL_DECORATORS = ("njit", "jit", "intrinsic")


def _is_kernel(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(
        name in ast.unparse(decorator)
        for decorator in node.decorator_list
        for name in KERNEL_DECORATORS
    )


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from the first statement after the docstring to the function's end."""
    body = node.body
    if (
        len(body) > 1
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    ):
        body = body[1:]
    return node.end_lineno - body[0].lineno + 1


def test_no_core_file_is_over_the_line_limit():
    long_files = {}
    for path in sorted(CORE.rglob("*.py")):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_FILE_LINES:
            long_files[path.relative_to(CORE).as_posix()] = lines
    assert long_files == {}, f"split these files along a seam (at most {MAX_FILE_LINES} lines)"


def test_no_core_function_is_over_the_line_limit():
    long_functions = {}
    for path in sorted(CORE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not _is_kernel(node):
                lines = _body_lines(node)
                if lines > MAX_BODY_LINES:
                    long_functions[f"{path.relative_to(CORE).as_posix()}:{node.name}"] = lines
    assert long_functions == {}, (
        f"extract named steps from these functions (at most {MAX_BODY_LINES} lines of code)"
    )


def test_the_guard_sees_kernels_and_docstrings():
    """The measures themselves: a kernel is exempt, a docstring does not count."""
    source = (
        "@numba.njit(cache=True)\ndef kernel():\n    pass\n\n"
        'def function():\n    """Doc.\n\n    More.\n    """\n    a = 1\n    return a\n'
    )
    kernel, function = [n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)]
    assert _is_kernel(kernel) and not _is_kernel(function)
    assert _body_lines(function) == 2
