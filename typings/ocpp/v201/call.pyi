# one dataclass per action, with the action's fields: not declared here
from typing import Any

def __getattr__(name: str) -> Any: ...
