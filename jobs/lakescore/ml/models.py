"""The model layer: resolve a registry reference to one pinned version, check its signature
against the feature table, and turn it into a scorer that Python workers load once.

``name@alias`` is resolved once per run; everything downstream uses the pinned version, so an
alias moved mid-run can never mix two model versions in one partition.

What a model is fed (one contract for every flavor): the signature's columns by name, with
the signature's types (:func:`lakescore.ml.scoring.feature_frame`), except where the flavor is
known to take a positional float matrix (a scikit-learn, XGBoost or LightGBM estimator over
numeric inputs only: the fast path). scikit-learn, XGBoost and LightGBM models are loaded
natively (their ``predict_proba`` / ``predict``); every other flavor, a custom
``PythonModel`` included, through ``mlflow.pyfunc``.

What a score is depends on the job's task (``model.task``, decided from the model on
``auto``): ``binary``: P(positive class), the positive class being the one the job config
names, looked up in the classifier's own ``classes_`` (the usual recipe,
``mlflow.pyfunc.spark_udf(..., result_type="double")`` over a pyfunc that returns
``predict_proba``, silently yields column 0, i.e. P(class 0)); ``multiclass``: the
probability of the predicted class, with the class and every class's probability;
``regression``: the predicted value. A model that returns class labels where a probability is
asked for is refused: no number is published that is not what the job says it is.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from lakescore.config import ModelRef, PlatformConfig, is_inside, local_path
from lakescore.errors import BadInputError, LakescoreError, ScoringFailure
from lakescore.redaction import redact
from lakescore.storage import apply_mlflow_env

BASELINE_ARTIFACT = "lakescore/score_baseline.json"

# Spark simpleString / Arrow type name / MLflow type name -> one family name.
_TYPE_FAMILIES = {
    "double": "double",
    "float64": "double",
    "float": "float",
    "float32": "float",
    "halffloat": "float",
    "long": "long",
    "bigint": "long",
    "int64": "long",
    "integer": "integer",
    "int": "integer",
    "int32": "integer",
    "smallint": "integer",
    "int16": "integer",
    "tinyint": "integer",
    "int8": "integer",
    "boolean": "boolean",
    "bool": "boolean",
    "string": "string",
    "large_string": "string",
    "utf8": "string",
    "large_utf8": "string",
    "string_view": "string",
}
_TYPE_FAMILIES.update(
    {
        "datetime": "datetime",
        "timestamp": "datetime",
        "timestamp_ntz": "datetime",
        "date": "date",
        "date32": "date",
        "date32[day]": "date",
        "date64[ms]": "date",
        "binary": "binary",
        "large_binary": "binary",
    }
)
_NUMERIC = {"double", "float", "long", "integer", "boolean"}
# What a feature column may be for a signature type (the column is cast to the signature's
# type when the model is fed; nothing that would lose information or guess a format).
_COMPATIBLE = {
    "double": _NUMERIC,
    "float": _NUMERIC,
    "long": {"long", "integer", "boolean"},
    "integer": {"integer", "boolean"},
    "boolean": {"boolean"},
    "string": {"string"},
    "datetime": {"datetime", "date"},
    "binary": {"binary"},
}
# Flavors lakescore loads natively (their own loader; predict_proba / predict), in the order
# they are preferred when a model has several.
NATIVE_FLAVORS = ("sklearn", "xgboost", "lightgbm")
TASKS = ("binary", "multiclass", "regression")


def type_family(type_name: str) -> str:
    """Normalise a Spark, Arrow or MLflow type name (``bigint``, ``int64``, ``long``)."""
    name = str(type_name).lower().strip()
    if name.startswith("decimal"):
        return "decimal"
    if name.startswith("timestamp"):  # Arrow: timestamp[us, tz=UTC]
        return "datetime"
    if name.startswith("dictionary<values=string") or name.startswith(
        "dictionary<values=large_string"
    ):
        return "string"  # a categorical column
    return _TYPE_FAMILIES.get(name, name)


@dataclass(frozen=True)
class ResolvedModel:
    """One concrete model version; what a run pins and records in lineage."""

    name: str
    version: int
    alias: str | None
    run_id: str | None
    source: str
    flavor: str  # one of NATIVE_FLAVORS, else "python_function"
    inputs: tuple[tuple[str, str], ...]  # (column, mlflow type) from the signature
    positive_class: int | str
    tags: dict[str, str] = field(default_factory=dict)
    # Where the registry serves the artifacts from (checked against the configured store).
    storage_location: str | None = None
    # The job's model.task; after loading (check_model_loadable), what the model was found
    # to be: binary | multiclass | regression.
    task: str = "auto"
    # The signature's outputs: (name or None, mlflow type) per column; empty when not logged.
    outputs: tuple[tuple[str | None, str], ...] = ()
    requirements_policy: str = "fail"

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @property
    def feature_columns(self) -> list[str]:
        return [name for name, _ in self.inputs]


def configure_mlflow(platform: PlatformConfig) -> None:
    """Point MLflow at the configured registry with bounded network waits."""
    import mlflow

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # The platform config is the bound (an inherited environment must not lift it).
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(platform.mlflow.request_timeout_s)
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(platform.mlflow.request_max_retries)
    mlflow.set_tracking_uri(platform.mlflow.tracking_uri)
    mlflow.set_registry_uri(platform.mlflow.registry_uri or platform.mlflow.tracking_uri)
    # s3:// artifacts: MLflow's boto3 client gets the platform's endpoint and region
    apply_mlflow_env(platform.storage)


def _is_not_found(exc: Exception) -> bool:
    code = getattr(exc, "error_code", "")
    return "RESOURCE_DOES_NOT_EXIST" in str(code) or "not found" in str(exc).lower()


def resolve_model_version(
    platform: PlatformConfig,
    ref: ModelRef,
    pinned_version: int | None = None,
    *,
    job: str | None = None,
) -> ResolvedModel:
    """``name@alias`` (or the config's / caller's pinned version) -> one :class:`ResolvedModel`.

    A caller-supplied ``pinned_version`` wins over the config (backfills with an older model).
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    configure_mlflow(platform)
    client = MlflowClient()
    version = pinned_version or ref.version
    try:
        if version is not None:
            mv = client.get_model_version(ref.name, str(version))
            alias = None
        else:
            assert ref.alias is not None
            mv = client.get_model_version_by_alias(ref.name, ref.alias)
            alias = ref.alias
    except MlflowException as exc:
        if _is_not_found(exc):
            try:
                client.get_registered_model(ref.name)
            except MlflowException:
                raise BadInputError(
                    f"model {ref.name!r} is not in the registry at "
                    f"{_redact(platform.mlflow.tracking_uri)}",
                    job=job,
                    key="model.name",
                ) from None
            what = f"version {version}" if version is not None else f"alias {ref.alias!r}"
            raise BadInputError(
                f"model {ref.name!r} has no {what}", job=job, key="model.alias"
            ) from None
        raise _registry_failure(platform, ref, str(exc.message), job) from None
    except OSError as exc:  # requests' connection errors and timeouts
        raise _registry_failure(platform, ref, f"{type(exc).__name__}: {exc}", job) from None
    # Nothing is read from a location outside the configured registry store, not even metadata.
    location = check_model_source(platform, ref.name, int(mv.version), str(mv.source), job=job)
    info = _model_info(f"models:/{ref.name}/{mv.version}", job=job)
    inputs, outputs = _signature(info, f"model {ref.name} version {mv.version}", job=job)
    flavor = next((f for f in NATIVE_FLAVORS if f in info.flavors), "python_function")
    return ResolvedModel(
        name=ref.name,
        version=int(mv.version),
        alias=alias,
        run_id=mv.run_id,
        source=str(mv.source),
        flavor=flavor,
        inputs=inputs,
        positive_class=ref.positive_class,
        tags=dict(mv.tags or {}),
        storage_location=location,
        task=ref.task,
        outputs=outputs,
        requirements_policy=ref.requirements,
    )


def _signature(
    info: Any, where: str, *, job: str | None
) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str | None, str], ...]]:
    """(inputs, outputs) of a model's signature as (column, MLflow type) pairs; the inputs
    must be named columns."""
    if info.signature is None or info.signature.inputs is None:
        raise BadInputError(
            f"{where} has no input signature; log it with one: input_example= a pandas "
            "DataFrame of the feature columns, or signature=mlflow.models.infer_signature(X, "
            "predictions) (MLflow infers none from an example with timezone-aware timestamps: "
            "make them naive UTC)",
            job=job,
            key="model",
        )
    inputs = tuple((spec.name, _spec_type(spec)) for spec in info.signature.inputs.inputs)
    if any(name is None for name, _ in inputs):
        raise BadInputError(
            f"{where}: signature inputs must be named columns", job=job, key="model"
        )
    outputs: tuple[tuple[str | None, str], ...] = ()
    if info.signature.outputs is not None:
        outputs = tuple(
            (getattr(spec, "name", None), _spec_type(spec))
            for spec in info.signature.outputs.inputs
        )
    return inputs, outputs


def _spec_type(spec: Any) -> str:
    """An MLflow column or tensor spec's type name (``double``, ``long``, ``string``...)."""
    kind = getattr(spec, "type", None)
    name = getattr(kind, "name", None)
    if name is None:
        import numpy as np

        try:  # a TensorSpec: its numpy dtype
            name = np.dtype(kind).name
        except TypeError:
            name = str(kind)
    return str(name)


def _registry_failure(
    platform: PlatformConfig, ref: ModelRef, text: str, job: str | None
) -> ScoringFailure:
    """One line for a registry that failed: unreachable (with the bounds that applied) or
    another error. The URI is shown without credentials."""
    import re

    where = f"model registry at {_redact(platform.mlflow.tracking_uri)}"
    reasons = (
        r"\[Errno -?\d+\] [^\"')(]+",
        "Read timed out",
        "timed out",
        "Failed to resolve",
        "Connection reset",
        "Max retries exceeded",
        "ConnectionError",
        "Timeout",
    )
    network = next((m for r in reasons if (m := re.search(r, text))), None)
    if network:
        reason = network.group(0).strip()
        return ScoringFailure(
            f"{where} is unreachable ({reason}) after "
            f"{platform.mlflow.request_max_retries + 1} attempt(s) of at most "
            f"{platform.mlflow.request_timeout_s}s (mlflow.request_timeout_s, "
            f"mlflow.request_max_retries); could not resolve {ref.reference}",
            job=job,
            key="mlflow.tracking_uri",
        )
    first = text.strip().splitlines()[0][:300] if text.strip() else ""
    return ScoringFailure(
        f"{where} failed for {ref.reference}: {first}", job=job, key="mlflow.tracking_uri"
    )


def _model_info(uri: str, *, job: str | None) -> Any:
    from mlflow.models import get_model_info

    try:
        return get_model_info(uri)
    except Exception as exc:
        raise BadInputError(f"cannot read model metadata of {uri}: {exc}", job=job) from None


def _redact(uri: str) -> str:
    """Drop credentials from a URI before it goes into a message or a log."""
    from lakescore.redaction import redact

    return redact(uri)


def check_signature(
    model: ResolvedModel,
    table_columns: dict[str, str],
    feature_columns: Sequence[str] | None = None,
    *,
    job: str | None = None,
    table: str | None = None,
) -> list[str]:
    """Check the feature table against the model signature; return the feature columns in the
    model's order. Names every missing or mistyped column in one error.

    ``table_columns`` maps column -> type name (Spark or Arrow spelling). ``feature_columns``
    is the job's explicit list, if it has one: it must equal the signature's inputs.
    """
    wanted = model.feature_columns
    if feature_columns is not None and set(feature_columns) != set(wanted):
        extra = sorted(set(feature_columns) - set(wanted))
        missing = sorted(set(wanted) - set(feature_columns))
        raise BadInputError(
            f"the job's feature columns differ from model {model.name} v{model.version}'s "
            f"signature (not in signature: {extra}; not listed: {missing})",
            job=job,
            key="features.columns",
            column=(extra or missing)[0],
        )
    missing = [c for c in wanted if c not in table_columns]
    if missing:
        raise BadInputError(
            f"expect_column_to_exist failed: feature column(s) {missing} required by model "
            f"{model.name} v{model.version} are missing from the feature table",
            job=job,
            file=table,
            column=missing[0],
        )
    mistyped: dict[str, str] = {}
    for name, sig_type in model.inputs:
        have = type_family(table_columns[name])
        want = type_family(sig_type)
        if have not in _COMPATIBLE.get(want, {want}):
            mistyped[name] = f"{name} is {table_columns[name]}, model expects {sig_type}"
    if mistyped:
        raise BadInputError(
            "expect_column_values_to_be_in_type_list failed: feature column types do not "
            f"match model {model.name} v{model.version}: " + "; ".join(mistyped.values()),
            job=job,
            file=table,
            column=next(iter(mistyped)),
        )
    return list(wanted)


def download_model(platform: PlatformConfig, model: ResolvedModel, *, job: str | None) -> Path:
    """Copy the pinned version's artifacts into ``var/models/<name>/<version>`` (once)."""
    import mlflow

    configure_mlflow(platform)
    target = Path(platform.var_dir) / "models" / model.name / str(model.version)
    if (target / "MLmodel").is_file():
        return target
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        mlflow.artifacts.download_artifacts(artifact_uri=model.uri, dst_path=str(tmp))
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ScoringFailure(f"cannot download {model.uri}: {exc}", job=job) from None
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


@dataclass(frozen=True)
class ScorerSpec:
    """What a Python worker needs to build the same scorer as the driver: the flavor, the
    signature, the positive class and the task the driver decided."""

    flavor: str
    positive_class: int | str
    task: str
    inputs: tuple[tuple[str, str], ...]
    outputs: tuple[tuple[str | None, str], ...] = ()

    @classmethod
    def of(cls, model: ResolvedModel) -> ScorerSpec:
        return cls(model.flavor, model.positive_class, model.task, model.inputs, model.outputs)

    @property
    def numeric_inputs(self) -> bool:
        return all(type_family(t) in _NUMERIC for _, t in self.inputs)


@dataclass
class Prediction:
    """One batch's predictions: ``score`` per row (float64); for a multiclass model also the
    predicted class (``label``, strings) and every class's probability (rows x classes)."""

    score: Any
    label: Any = None
    probabilities: Any = None
    class_names: list[str] | None = None  # the probabilities' columns


_LABEL_TYPES = {"long", "integer", "string", "boolean"}


class ModelScorer:
    """A loaded model and how its output becomes :class:`Prediction` for the job's task.

    Built once per Python worker process (see :func:`lakescore.ml.scoring.scorer_for`) and
    once on the driver, where a model that cannot serve the task fails before any Spark work.
    ``takes_matrix``: the model is fed a positional float64 matrix (native flavors over
    numeric inputs); otherwise a pandas DataFrame with the signature's names and types.
    """

    # scikit-learn's predict_proba on ~100,000-row slices beat one call over millions of rows
    # (FIELD-NOTES: HGB 7.9 s vs 10.2 s for 2M rows, one thread): keep working sets small.
    slice_rows = 100_000

    def __init__(self, model_dir: str, spec: ScorerSpec, estimator: Any = None) -> None:
        self.model_dir = model_dir
        self.spec = spec
        self.flavor = spec.flavor
        self.native: Any = None
        self._pyfunc: Any = None
        if estimator is not None:
            self.native = estimator
        elif spec.flavor in NATIVE_FLAVORS:
            self.native = _load_native(model_dir, spec.flavor)
        else:
            import mlflow.pyfunc

            self._pyfunc = mlflow.pyfunc.load_model(model_dir)
        self.classes: list[Any] = []
        self.warnings: list[str] = []
        self._column = 0
        self.task = self._bind_native() if self.native is not None else self._bind_pyfunc()
        self.takes_matrix = (
            self.native is not None and spec.numeric_inputs and not _needs_frame(self.native)
        )
        # Native boosters take string features as pandas categoricals (never as objects).
        self.categorical = self.native is not None and spec.flavor in ("xgboost", "lightgbm")

    @property
    def native_estimator(self) -> Any | None:
        """The scikit-learn / XGBoost / LightGBM estimator (None for a pyfunc model): what the
        driver broadcasts to the workers, which then need no MLflow import."""
        return self.native

    @property
    def class_names(self) -> list[str]:
        return [str(c) for c in self.classes]

    @property
    def positive_class(self) -> Any:
        """The class whose probability a binary score is (as the model spells it)."""
        if self.task == "binary" and self.classes:
            value = self.classes[self._column]
            return value.item() if hasattr(value, "item") else value
        return self.spec.positive_class

    def _refuse(self, message: str, key: str = "model.task") -> BadInputError:
        return BadInputError(message, file=self.model_dir, key=key)

    def _bind_native(self) -> str:
        model, wanted = self.native, self.spec.task
        classes = getattr(model, "classes_", None)
        self.classes = list(classes) if classes is not None else []
        proba = bool(self.classes) and hasattr(model, "predict_proba")
        classifier = bool(self.classes) or _is_classifier(model)
        if wanted == "auto":
            if proba:
                wanted = "binary" if len(self.classes) == 2 else "multiclass"
            elif classifier:
                raise self._refuse(
                    f"the {self.flavor} model is a classifier without predict_proba: it returns "
                    "class labels, not probabilities"
                )
            else:
                wanted = "regression"
        if wanted in ("binary", "multiclass") and not proba:
            raise self._refuse(
                f"model.task is {wanted}, but the {self.flavor} model is not a probabilistic "
                "classifier (no predict_proba)"
            )
        if wanted == "regression" and classifier:
            raise self._refuse(
                f"model.task is regression, but the {self.flavor} model is a classifier "
                f"(classes {self.classes[:10]}): its predict returns labels, not values"
            )
        if wanted == "binary":
            self._column = self._positive_column(self.classes)
        return wanted

    def _positive_column(self, classes: Sequence[Any]) -> int:
        positive = self.spec.positive_class
        matches = [i for i, c in enumerate(classes) if c == positive]
        matches = matches or [i for i, c in enumerate(classes) if str(c) == str(positive)]
        if not matches:
            raise self._refuse(
                f"positive_class {positive!r} is not one of the model's classes {list(classes)}",
                key="model.positive_class",
            )
        return matches[0]

    def _bind_pyfunc(self) -> str:
        """The task of a pyfunc model, from its output signature: several float columns are
        class probabilities (named by class when the columns have names), one float column a
        value, one integer / string / boolean column class labels (refused as a score)."""
        wanted, outputs = self.spec.task, self.spec.outputs
        if not outputs:
            if wanted == "auto":
                raise self._refuse(
                    "the pyfunc model has no output signature, so what its predict returns is "
                    "unknown: set model.task (binary, multiclass or regression)"
                )
            return wanted
        families = [type_family(t) for _, t in outputs]
        if len(outputs) == 1 and families[0] in _LABEL_TYPES:
            if wanted == "regression" and families[0] in ("long", "integer"):
                return wanted
            raise self._refuse(
                f"the pyfunc model's predict returns class labels ({outputs[0][1]}), not "
                "probabilities; a label is never published as a score (log the model with "
                "pyfunc_predict_fn='predict_proba', or return probabilities from the "
                "PythonModel; set model.task: regression if the values are quantities)"
            )
        if len(outputs) > 1:
            if any(f not in ("double", "float") for f in families):
                raise self._refuse(
                    f"the pyfunc model returns columns of types {families}; lakescore scores "
                    "models that return probabilities or one value"
                )
            names = [n for n, _ in outputs]
            self.classes = list(names) if all(names) else list(range(len(outputs)))
            if wanted == "auto":
                wanted = "binary" if len(outputs) == 2 else "multiclass"
            if wanted == "regression":
                raise self._refuse(
                    f"model.task is regression, but the pyfunc model returns {len(outputs)} "
                    "probability columns"
                )
            if wanted == "binary":
                self._column = self._positive_column(self.classes)
            return wanted
        if wanted == "multiclass":
            raise self._refuse("model.task is multiclass, but the pyfunc model returns one column")
        # One float column: a value (auto) or, when the job says binary, P(positive class).
        return "regression" if wanted == "auto" else wanted

    def score(self, features: Any, *, finite: bool = False) -> Prediction:
        """Predictions for a float matrix (``takes_matrix``) or a DataFrame of the signature's
        columns. ``finite``: the caller checked every value is finite, so scikit-learn skips
        its own check (a pass over the matrix per pipeline step, 5% of a scaler + logistic
        regression's time)."""
        if finite and self.flavor == "sklearn":
            import sklearn

            with sklearn.config_context(assume_finite=True):
                return self._score_slices(features)
        return self._score_slices(features)

    def _score_slices(self, features: Any) -> Prediction:
        import numpy as np

        rows = features.shape[0]
        if rows <= self.slice_rows:
            return self._score_slice(features)
        parts = [
            self._score_slice(features[start : start + self.slice_rows])
            for start in range(0, rows, self.slice_rows)
        ]
        if self.task != "multiclass":  # the common case: one float column
            score = np.empty(rows, dtype=np.float64)
            start = 0
            for part in parts:
                score[start : start + len(part.score)] = part.score
                start += len(part.score)
            return Prediction(score)
        return Prediction(
            np.concatenate([p.score for p in parts]),
            np.concatenate([p.label for p in parts]),
            np.concatenate([p.probabilities for p in parts]),
            self.class_names,
        )

    def _raw(self, features: Any) -> Any:
        import numpy as np

        model = self.native
        if model is None:
            out = self._pyfunc.predict(features)
            out = out.to_numpy() if hasattr(out, "to_numpy") else np.asarray(out)
            if self.task != "regression" and not np.issubdtype(out.dtype, np.floating):
                raise ScoringFailure(
                    f"the pyfunc model returned {out.dtype} values where probabilities are "
                    "asked for (class labels?); nothing is published",
                    file=self.model_dir,
                    key="model.task",
                )
            return out
        if self.task == "regression":
            return model.predict(features)
        return model.predict_proba(features)

    def _score_slice(self, features: Any) -> Prediction:
        import numpy as np

        out = self._raw(features)
        if self.task == "multiclass":
            proba = np.asarray(out, dtype=np.float64)
            best = proba.argmax(axis=1)
            names = np.asarray(self.class_names, dtype=object)
            return Prediction(
                proba[np.arange(len(best)), best], names[best], proba, self.class_names
            )
        out = np.asarray(out)
        if out.ndim == 2:
            out = out[:, self._column if out.shape[1] > 1 else 0]
        return Prediction(out.astype(np.float64, copy=False))


class _ByValue:
    """An estimator pickled with cloudpickle: a model MLflow saved with cloudpickle may hold
    functions or classes of the training script's ``__main__`` (a ``FunctionTransformer``'s
    function), which cloudpickle stored by value and plain pickle (a Spark broadcast) cannot
    take. Unpickling gives the estimator itself."""

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        from pyspark import cloudpickle

        return cloudpickle.loads, (cloudpickle.dumps(self.estimator),)


def shippable_estimator(model_dir: str | Path, estimator: Any) -> Any:
    """What to broadcast to the workers for a native estimator: the estimator itself, or for
    a scikit-learn model saved with cloudpickle, the estimator pickled by value (see
    :class:`_ByValue`); skops and XGBoost / LightGBM models hold importable types only."""
    import yaml

    try:
        flavors = (yaml.safe_load((Path(model_dir) / "MLmodel").read_text()) or {})["flavors"]
        by_value = flavors.get("sklearn", {}).get("serialization_format") == "cloudpickle"
    except (OSError, KeyError, TypeError, AttributeError, yaml.YAMLError):
        by_value = False
    return _ByValue(estimator) if by_value else estimator


def _load_native(model_dir: str, flavor: str) -> Any:
    """The estimator of a native flavor, with the flavor's own loader."""
    import importlib

    return importlib.import_module(f"mlflow.{flavor}").load_model(model_dir)


def _is_classifier(model: Any) -> bool:
    try:
        from sklearn.base import is_classifier

        return bool(is_classifier(model))
    except Exception:
        return getattr(model, "_estimator_type", None) == "classifier"


def _needs_frame(model: Any) -> bool:
    """Whether a native model needs its columns by name (a scikit-learn ColumnTransformer
    anywhere in it, a booster with categorical features) rather than a float matrix."""
    from sklearn.compose import ColumnTransformer

    stack = [model]
    while stack:
        step = stack.pop()
        if isinstance(step, ColumnTransformer):
            return True
        for _, inner in getattr(step, "steps", []) or []:
            stack.append(inner)
        inner = getattr(step, "estimator", None)
        if inner is not None and inner is not step:
            stack.append(inner)
    booster = getattr(model, "booster_", None)
    if booster is not None and getattr(booster, "pandas_categorical", None):
        return True  # LightGBM trained on pandas categoricals
    try:
        types = model.get_booster().feature_types  # XGBoost
    except Exception:
        types = None
    return bool(types and "c" in types)


# --------------------------------------------------------------------------- requirements


def requirement_conflicts(model_dir: Path) -> list[str]:
    """Packages the model's ``requirements.txt`` pins that the environment does not satisfy:
    not installed, or a version outside the requirement (an ``==`` pin counts as its
    major.minor: a patch release apart is not a conflict). One text per package, naming it
    and both versions."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    path = model_dir / "requirements.txt"
    if not path.is_file():
        return []
    found = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.marker is not None and not req.marker.evaluate():
            continue
        installed = None
        for dist in (req.name, *_DISTRIBUTION_ALIASES.get(req.name.lower(), ())):
            try:
                installed = version(dist)
                break
            except PackageNotFoundError:
                continue
        if installed is None:
            found.append(f"{req.name} (model wants {req.specifier or 'any'}, not installed)")
            continue
        specifier = req.specifier
        pins = [s for s in specifier if s.operator == "=="]
        if pins:
            try:
                pinned = Version(pins[0].version)
                specifier = SpecifierSet(f"=={pinned.major}.{pinned.minor}.*")
            except InvalidVersion:
                pass
        try:
            ok = specifier.contains(Version(installed), prereleases=True)
        except InvalidVersion:
            ok = True
        if not ok:
            found.append(f"{req.name} (model logged with {req.specifier}, installed {installed})")
    return found


# A requirement satisfied by another distribution of the same import package.
_DISTRIBUTION_ALIASES = {"xgboost": ("xgboost-cpu",)}


# --------------------------------------------------------------------------- artifact guards


def model_download_uri(platform: PlatformConfig, name: str, version: int) -> str:
    """Where the registry says version ``version``'s artifacts are (what MLflow loads)."""
    from mlflow import MlflowClient

    return str(MlflowClient().get_model_version_download_uri(name, str(version)))


def check_model_source(
    platform: PlatformConfig, name: str, version: int, source: str, *, job: str | None = None
) -> str:
    """Refuse a model version whose artifacts live outside the configured registry store.

    Allowed: below ``mlflow.artifact_root`` (local path or URI), or ``mlflow-artifacts:``
    URIs (served by the configured tracking server itself). Returns the download URI.
    """
    location = model_download_uri(platform, name, version)
    if _location_allowed(platform, location):
        return location
    root = platform.mlflow.artifact_root or "(mlflow.artifact_root is not set)"
    raise BadInputError(
        f"model {name} version {version} loads from {redact(location)} (source "
        f"{redact(source)}), outside the configured registry store {redact(root)}; "
        "lakescore loads model artifacts only from there",
        job=job,
        key="model",
    )


def _location_allowed(platform: PlatformConfig, location: str) -> bool:
    parsed = urlparse(location)
    if parsed.scheme == "mlflow-artifacts":
        return urlparse(platform.mlflow.tracking_uri).scheme in ("http", "https")
    root = platform.mlflow.artifact_root
    if not root:
        return False
    if parsed.scheme in ("", "file"):
        path = unquote(parsed.path) if parsed.scheme == "file" else location
        root_path = unquote(urlparse(root).path) if root.startswith("file:") else root
        return Path(path).is_absolute() and is_inside(path, root_path)
    return is_inside(location, root)


def check_model_loadable(
    model_dir: Path, model: ResolvedModel, *, job: str | None = None
) -> ModelScorer:
    """Load the downloaded model once on the driver: a corrupt or missing model file, a
    flavor that cannot load here, logged requirements the environment does not satisfy
    (``model.requirements: fail``; with ``warn`` they are kept in ``warnings``), a positive
    class the classifier does not have or a model that cannot serve the task fails here,
    naming the model and the file, instead of inside every Spark task. The scorer's ``task``
    is what the model was found to be."""
    import yaml

    mlmodel = model_dir / "MLmodel"
    where = f"model {model.name} version {model.version}"
    try:
        flavors: dict[str, Any] = (yaml.safe_load(mlmodel.read_text()) or {}).get("flavors", {})
    except (OSError, yaml.YAMLError) as exc:
        raise BadInputError(
            f"{where}: its MLmodel file is unreadable ({type(exc).__name__})",
            job=job,
            file=_artifact_file(model, "MLmodel"),
        ) from None
    spec = flavors.get(model.flavor) or flavors.get("python_function") or {}
    relative = str(spec.get("pickled_model") or spec.get("model_path") or spec.get("data") or "")
    if relative and not (model_dir / relative).exists():
        raise BadInputError(
            f"{where}: model file {relative} is missing from its artifacts",
            job=job,
            file=_artifact_file(model, relative),
        )
    conflicts = requirement_conflicts(model_dir)
    if conflicts and model.requirements_policy == "fail":
        raise BadInputError(
            f"{where} was logged with requirements this environment does not satisfy: "
            + "; ".join(conflicts)
            + " (install matching versions, or set model.requirements: warn)",
            job=job,
            key="model.requirements",
            file=_artifact_file(model, "requirements.txt"),
        )
    try:
        scorer = ModelScorer(str(model_dir), ScorerSpec.of(model))
        scorer.warnings = [f"{where}: requirement not satisfied: {c}" for c in conflicts]
        return scorer
    except LakescoreError as exc:
        exc.file = exc.file and _artifact_file(model, relative or "MLmodel")
        raise exc.with_context(job=job) from None
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        flavor = spec.get("loader_module") or model.flavor
        raise BadInputError(
            f"{where} ({flavor}) cannot be loaded here ({type(exc).__name__}: {first[:300]})",
            job=job,
            file=_artifact_file(model, relative or "MLmodel"),
        ) from None


def _artifact_file(model: ResolvedModel, relative: str) -> str:
    """The registry-side location of one artifact file (what the user can go and fix)."""
    base = model.storage_location or model.source
    return redact(local_path(base.rstrip("/") + "/" + relative))


def last_decided_task(platform: PlatformConfig, job: str) -> str | None:
    """The task the latest successful run of ``job`` decided (``model.task: auto``), from its
    lineage row; None before the first run."""
    import json

    from lakescore.lakehouse.lineage import find_lineage

    rows = find_lineage(platform.lineage_table, job=job, action="score", status="succeeded")
    for row in reversed(rows):
        if not row.get("details"):
            continue
        task = json.loads(row["details"]).get("model_task")
        if task:
            return str(task)
    return None
