"""Data quality: what is refused, and what is measured.

* :mod:`~lakescore.quality.validation`: Great Expectations rules on the feature partition.
* :mod:`~lakescore.quality.monitoring`: score distributions and drift (PSI).
* :mod:`~lakescore.quality.guards`: hostile or broken input turned into one clear error.
"""
