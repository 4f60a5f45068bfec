"""Use pruned data: train and evaluate on a subset (``datadiet_hub.downstream.train``) and the main job (``datadiet demo``).

Needs torch (the ``[torch]`` extra), like ``scoring``, which it builds on.
"""

import datadiet_hub.scoring  # noqa: F401 -- raises the ImportError naming the missing extra when torch is absent
