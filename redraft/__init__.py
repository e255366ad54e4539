"""redraft: iterative critique-and-refine loops.

An actor drafts, critics say precisely what is wrong, an editor revises, until the critics
are satisfied or a budget runs out. This module is the whole public API.
"""

from redraft.agents.actor import Actor, LLMActor
from redraft.agents.critics.base import Critic
from redraft.agents.critics.checklist import ChecklistCritic
from redraft.agents.critics.function import FunctionCritic
from redraft.agents.critics.human import HumanCritic
from redraft.agents.critics.llm import LLMCritic
from redraft.agents.critics.pairwise import PairwiseCritic
from redraft.agents.critics.tests import TestsCritic, TestSuite
from redraft.agents.editor import Editor, LLMEditor
from redraft.agents.prompts import PromptLibrary
from redraft.errors import (
    ConfigError,
    EmbeddingModelMismatch,
    MemoryFileError,
    ModelError,
    RedraftError,
    StructuredOutputError,
)
from redraft.models.base import (
    ChatModel,
    Completion,
    Message,
    ModelRequest,
    ModelSettings,
    ToolCall,
    ToolSpec,
)
from redraft.models.litellm import LiteLLMModel
from redraft.models.local import LocalModel
from redraft.models.resolve import resolve_model
from redraft.models.scripted import ScriptedCall, ScriptedModel
from redraft.refiner import Refiner, arefine, refine
from redraft.types import (
    Candidate,
    Comparison,
    ConstraintCheck,
    Critique,
    CritiqueEvent,
    Draft,
    DraftEvent,
    EditEvent,
    EditMode,
    Event,
    HumanAnswer,
    Issue,
    Lesson,
    Origin,
    Result,
    Round,
    RoundEvent,
    Rubric,
    StopEvent,
    StopReason,
    Task,
    Usage,
    UsageReport,
    Waiting,
)

__version__ = "0.1.0"

__all__ = [
    "Actor",
    "Candidate",
    "ChatModel",
    "ChecklistCritic",
    "Comparison",
    "Completion",
    "ConfigError",
    "ConstraintCheck",
    "Critic",
    "Critique",
    "CritiqueEvent",
    "Draft",
    "DraftEvent",
    "EditEvent",
    "EditMode",
    "Editor",
    "EmbeddingModelMismatch",
    "Event",
    "FunctionCritic",
    "HumanAnswer",
    "HumanCritic",
    "Issue",
    "LLMActor",
    "LLMCritic",
    "LLMEditor",
    "Lesson",
    "LiteLLMModel",
    "LocalModel",
    "MemoryFileError",
    "Message",
    "ModelError",
    "ModelRequest",
    "ModelSettings",
    "Origin",
    "PairwiseCritic",
    "PromptLibrary",
    "RedraftError",
    "Refiner",
    "Result",
    "Round",
    "RoundEvent",
    "Rubric",
    "ScriptedCall",
    "ScriptedModel",
    "StopEvent",
    "StopReason",
    "StructuredOutputError",
    "Task",
    "TestSuite",
    "TestsCritic",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "UsageReport",
    "Waiting",
    "__version__",
    "arefine",
    "refine",
    "resolve_model",
]
