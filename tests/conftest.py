from __future__ import annotations

import os

# Tests never reach a model hub or LiteLLM's price list.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
