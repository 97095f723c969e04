"""The lakehouse layer: every Delta table lakescore reads or writes.

* :mod:`~lakescore.lakehouse.tables`: reads and publishes (delta-spark and delta-rs), partitions.
* :mod:`~lakescore.lakehouse.layout`: the column layout of the prediction and lineage tables.
* :mod:`~lakescore.lakehouse.lineage`: the append-only lineage table.
"""
