"""Tools a role may call while it writes a draft or a critique: typed Python functions
(`@tool`), one tool loop shared by every role, and built-in tools (`Calculator`,
`SearchTool`, `PythonTool`)."""

from redraft.tools.base import Tool, ToolContext, ToolError, tool, tools_from
from redraft.tools.calculator import Calculator, CalculatorResult
from redraft.tools.loop import ToolLimits, ToolRun, complete_with_tools
from redraft.tools.python import PythonResult, PythonTool
from redraft.tools.search import Passage, SearchResults, SearchTool
from redraft.types import ToolInvocation

__all__ = [
    "Calculator",
    "CalculatorResult",
    "Passage",
    "PythonResult",
    "PythonTool",
    "SearchResults",
    "SearchTool",
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolInvocation",
    "ToolLimits",
    "ToolRun",
    "complete_with_tools",
    "tool",
    "tools_from",
]
