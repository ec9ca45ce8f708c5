"""TaskPilot. The version has one source, pyproject.toml: `taskpilot --version`, `/health`, the start-up
line, the MCP server and the OpenAPI document's `info.version` all read it from the installed package."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("taskpilot")
except PackageNotFoundError:  # a source tree on sys.path without `pip install -e .`
    __version__ = "0+unknown"
