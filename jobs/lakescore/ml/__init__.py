"""Models: the registry, and scoring feature batches with them.

* :mod:`~lakescore.ml.models`: resolve ``name@alias`` to a pinned version, check its signature,
  load it as a scorer.
* :mod:`~lakescore.ml.scoring`: pure functions of DataFrames and Arrow batches that score.
* :mod:`~lakescore.ml.file_scoring`: the pyarrow-in-the-task reader and writer.
* :mod:`~lakescore.ml.shadow`: champion/challenger (shadow) scoring.
"""
