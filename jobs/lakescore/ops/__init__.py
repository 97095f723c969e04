"""Operating published predictions: governance, recovery, cost and capacity.

* :mod:`~lakescore.ops.governance`: rollback, right to erasure, VACUUM.
* :mod:`~lakescore.ops.recovery`: attempts abandoned by a dead driver, and their clean-up.
* :mod:`~lakescore.ops.cost`: what a run cost; :mod:`~lakescore.ops.executors`: executors lost.
* :mod:`~lakescore.ops.forecast`: how long a partition will take (the batch window).
"""
