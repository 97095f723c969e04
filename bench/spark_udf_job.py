"""The standard recipe as a one-off Spark job: ``mlflow.pyfunc.spark_udf(...,
env_manager="local")`` over ``spark.read.parquet`` of one partition's files, written as
Parquet. Run by ``bench/scoring.py`` through ``spark-submit`` (case ``spark_udf_e2e``) with
lakescore's own Spark conf; prints one JSON line with its inner timings.

    spark-submit ... bench/spark_udf_job.py --conf-dir D --model-uri U --files-json F --out O
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    started = time.perf_counter()
    parser = argparse.ArgumentParser()
    parser.add_argument("--conf-dir", required=True)
    parser.add_argument("--model-uri", required=True)
    parser.add_argument("--files-json", required=True, help="JSON list of Parquet file URIs")
    parser.add_argument("--key", required=True)
    parser.add_argument("--features-json", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    import mlflow.pyfunc
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    from lakescore.config import load_platform
    from lakescore.ml.models import configure_mlflow

    configure_mlflow(load_platform(args.conf_dir))
    spark = SparkSession.builder.getOrCreate()
    session_ready = time.perf_counter()
    udf = mlflow.pyfunc.spark_udf(
        spark, model_uri=args.model_uri, env_manager="local", result_type="double"
    )
    model_ready = time.perf_counter()
    features = json.loads(args.features_json)
    frame = spark.read.parquet(*json.loads(args.files_json))
    frame.select(F.col(args.key), udf(*[F.col(c) for c in features]).alias("score")).write.mode(
        "overwrite"
    ).parquet(args.out)
    done = time.perf_counter()
    print(
        json.dumps(
            {
                "session_seconds": session_ready - started,
                "model_seconds": model_ready - session_ready,
                "score_write_seconds": done - model_ready,
            }
        )
    )
    spark.stop()


if __name__ == "__main__":
    main()
