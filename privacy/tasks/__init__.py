"""Privacy tasks, one module per area; imported here so Celery's autodiscovery finds them."""

from __future__ import annotations

from privacy.tasks.erasure import *  # noqa: F401,F403
from privacy.tasks.export import *  # noqa: F401,F403
from privacy.tasks.policy import *  # noqa: F401,F403
from privacy.tasks.retention import *  # noqa: F401,F403
