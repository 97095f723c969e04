"""The warm driver: one long-lived process that serves Airflow's validate/score tasks.

Through spark-submit every task pays a JVM start, the MLflow and Great Expectations imports,
the model's load and a validation context (~30 s) before 1-2 s of scoring. ``lakescore
driver`` pays them once: it holds a Spark session of one profile, imports MLflow and Great
Expectations at start, and runs each request with the same library functions the CLI and the
spark-submit jobs run (:func:`lakescore.run.score_partition`,
:func:`lakescore.run.range.score_range`), one request at a time, streaming progress back as
NDJSON.

=============  ==============================================================
``protocol``   the request body and the event lines (pydantic; no Spark)
``server``     the warm process: Spark session, FIFO of runs, the HTTP API
``client``     what a caller (the Airflow operators) uses: health, run, fall back
``process``    start and stop a driver as a child process (``lakescore airflow``,
               benchmarks, tests)
=============  ==============================================================
"""
