"""TrainFlow: real data in, several recommender families trained in parallel, one honest
comparison, the winner versioned as a Metaflow artifact.

    start -> get_dataset -> build_workflow -> plan_candidates
    plan_candidates -> cpu_fanout -> train_cpu (foreach) -> collect_cpu
                   \\-> gpu_fanout -> train_gpu (foreach) -> collect_gpu
    collect_cpu + collect_gpu -> join (leaderboard, winner, card) -> refit_winner -> batch_score
    batch_score -> end

The winner is chosen on validation, then refit on all the run's data (train + validation + test)
for serving (``best_model``; ``--refit false`` keeps the evaluated fit). ``end`` moves the
``production`` run tag to this run when its winner beats the production run's recipe, trained
again here as the ``incumbent`` candidate (README: Going to production).

Steps are thin: each calls tested functions in ``data``, ``workflow_builder`` and ``reclab``.
Artifacts users read with the Metaflow client (stable names): ``leaderboard``,
``best_model_name``, ``best_params``, ``best_model`` (served: the refit), ``evaluated_model``
(the winner as evaluated, fitted on train; the metrics describe it), ``test_metrics``,
``split``, ``caveats``, ``promotion_decision``.

A candidate that raises or runs past the per-candidate time limit (the ``limits`` Config) is
caught by ``@catch`` and becomes a failed leaderboard row; the others train on. Candidates are
planned in ``plan_candidates``, after the data steps, so ``resume plan_candidates`` after fixing
a grid file reuses the data and trains the fixed candidates.

Deployment (README: Going to production): ``@project(name="reclab")`` keeps user, test and
production deployments and their runs apart (branches ``user.<name>``, ``test.<branch>`` with
``--branch``, ``prod`` with ``--production``); ``@schedule(daily=True)`` runs a deployed flow
(``step-functions create``, ``argo-workflows create``) every day at 00:00 UTC. Neither changes
a local ``run``.
"""

import logging
import os
import sys

# Metaflow's code package (what --with batch uploads) takes only these suffixes; the steps also
# read .sql files. The packages outside flows/ come in through the symlinks in flows/.
os.environ.setdefault("METAFLOW_DEFAULT_PACKAGE_SUFFIXES", ".py,.sql,.json,.toml")
# Parallel local branches default to the machine's cores, not Metaflow's 16: ALS, SAR and item
# KNN already use every core, so more branches than cores train no faster, while each holds its
# own copy of the train data and model (gigabytes at 25M rows). `run --max-workers N` (or
# METAFLOW_RUN_MAX_WORKERS) overrides it, e.g. for steps sent to AWS Batch.
os.environ.setdefault("METAFLOW_RUN_MAX_WORKERS", str(os.cpu_count() or 1))
# Metaflow refuses to start without a user name other than root (containers, CI); give it one.
if all(
    os.environ.get(name, "root") in ("", "root")
    for name in ("METAFLOW_USER", "SUDO_USER", "USERNAME", "USER")
):
    os.environ["METAFLOW_USER"] = "reclab"

from metaflow import (  # noqa: E402
    Config,
    FlowSpec,
    Parameter,
    card,
    catch,
    current,
    project,
    resources,
    schedule,
    step,
    timeout,
)

from custom_decorators import (  # noqa: E402
    COMPUTE_DEFAULTS,
    gpu_on_batch,
    magicdir,
    magicdir_path,
    stop_cleanly,
    task_datastore,
)
from reclab.limits import LIMITS_DEFAULT_TEXT, parse_limits  # noqa: E402

# Library code logs progress (counts, rates, seconds); show it in the step logs.
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")


@project(name="reclab")
@schedule(daily=True)
class TrainFlow(FlowSpec):
    """Train, compare and version recommender models."""

    compute = Config(
        "compute",
        default_value=COMPUTE_DEFAULTS,
        help='Where train_gpu runs: {"remote": true, "image": ..., "queue": ...} adds '
        "@batch(gpu=1) to it (see docs/aws_batch.md).",
    )
    limits = Config(
        "limits",
        default_value=LIMITS_DEFAULT_TEXT,
        parser=parse_limits,
        help='Per-candidate time limit: {"candidate_seconds": 14400} (the default, 4 hours). '
        "A candidate past it is stopped and recorded as failed; fixed for the run and its "
        "resumes.",
    )
    dataset = Parameter(
        "dataset",
        default="movielens-100k",
        help="Dataset: movielens-100k (100k ratings), movielens-1m (1M), movielens-10m (10M), "
        "movielens-20m (20M), movielens-25m (25M ratings, 162k users), lastfm-360k (17.5M play "
        "counts, no timestamps), online-retail (UCI invoice lines, 542k rows), hm (H&M, "
        "31.8M purchases; Kaggle files in --data-dir only), synthetic, or file (with "
        "--interactions-file). Named datasets are read from --data-dir as published (folder, "
        "its parent or the archive) or downloaded into the cache; README: Datasets.",
    )
    data_dir = Parameter(
        "data-dir",
        default="",
        help="Local directory holding the dataset files as published: the unpacked folder "
        "(e.g. ml-25m/), its parent, or the archive itself (else $RECLAB_DATA_DIR, else download "
        "into the cache).",
    )
    interactions_file = Parameter(
        "interactions-file",
        default="",
        help="Your own interactions file for --dataset file: parquet (a file or a directory) or "
        "delimited text (.csv, .tsv, .txt, .dat, each optionally .gz; delimiter, header and "
        "encoding are detected).",
    )
    columns = Parameter(
        "columns",
        default="",
        help="JSON column mapping for --dataset file, columns by name or 0-based position: "
        '\'{"user": "customer", "item": "sku", "timestamp": "ts", "weight": "qty"}\' or, for a '
        'headerless ratings.dat, \'{"user": 0, "item": 1, "weight": 2, "timestamp": 3}\'; '
        'optional "user_features"/"item_features" lists and read options "delimiter" (, ; tab '
        '| ::), "header" (true/false), "encoding" (utf-8, latin-1, utf-16), "names" (one per '
        "column).",
    )
    synthetic_interactions = Parameter(
        "synthetic-interactions",
        type=int,
        default=100_000,
        help="Rows generated for --dataset synthetic (MovieLens-shaped: distinct user-item "
        "pairs; 25M rows give about 162k users x 59k items).",
    )
    synthetic_users = Parameter(
        "synthetic-users",
        type=int,
        default=0,
        help="Users of --dataset synthetic; 0 scales with the rows (one per 154 rows).",
    )
    synthetic_items = Parameter(
        "synthetic-items",
        type=int,
        default=0,
        help="Items of --dataset synthetic; 0 scales with the rows (59k at 25M rows, 3.7k at 1M).",
    )
    row_sampling = Parameter(
        "row-sampling",
        type=float,
        default=100.0,
        help="Percent of rows to keep (Bernoulli, seeded); 0 or 100 keep everything.",
    )
    training_end_date = Parameter(
        "training-end-date",
        default="",
        help="yyyy-mm-dd (00:00 UTC): train is before it. Default: day of the 80th percentile.",
    )
    validation_end_date = Parameter(
        "validation-end-date",
        default="",
        help="yyyy-mm-dd (00:00 UTC): validation is before it, test from it. Default: day of "
        "the 90th percentile.",
    )
    models = Parameter("models", default="all", help="Comma-separated model families, or 'all'.")
    grid = Parameter(
        "grid",
        default="quick",
        help="Hyper-parameter grid: quick (default) or full (a wider search).",
    )
    grid_file = Parameter(
        "grid-file",
        default="",
        help="JSON file of per-family grids (default: reclab/grids.json).",
    )
    als_engine = Parameter(
        "als-engine",
        default="implicit",
        help="ALS engine: implicit (fast, one machine) or spark (pyspark.ml, scales out).",
    )
    spark_master = Parameter(
        "spark-master",
        default="local[*]",
        help="Spark master URL for --als-engine spark.",
    )
    k = Parameter("k", type=int, default=10, help="Cutoff of the ranking metrics.")
    batch_k = Parameter(
        "batch-k", type=int, default=10, help="Items per user in the pre-computed batch scores."
    )
    scores_dir = Parameter(
        "scores-dir",
        default="",
        help="Where batch_score writes the winner's top-K for every known user (partitioned "
        "parquet); default: <datastore root>/TrainFlow/<run id>/batch_scores.",
    )
    validation_metric = Parameter(
        "validation-metric",
        default="ndcg_at_10",
        help="Metric that picks the best candidate on validation, e.g. recall_at_10.",
    )
    seed = Parameter("seed", type=int, default=42, help="Seed for sampling, models, bootstrap.")
    refit = Parameter(
        "refit",
        type=bool,
        default=True,
        help="Refit the winner's recipe on all the run's data (train + validation + test) for "
        "serving and batch scores; false serves the evaluated fit (pure experiments).",
    )
    promotion = Parameter(
        "promotion",
        default="challenger",
        help="When the run takes the 'production' tag: challenger (its winner beats the "
        "production run's recipe, trained again here as the 'incumbent' candidate; the "
        "first run is promoted), retrain (also when the incumbent's recipe wins), never.",
    )
    bootstrap_samples = Parameter(
        "bootstrap-samples",
        type=int,
        default=1000,
        help="Bootstrap resamples for the 95% intervals of NDCG and recall.",
    )

    @step
    def start(self):
        """Validate every parameter, and claim --scores-dir, before any expensive work."""
        from reclab.batch_scoring import claim_scores_location
        from reclab.training import RunParameters, validate_run_parameters

        params = RunParameters.from_flow(self)
        self.family_overrides = params.family_overrides
        checked = validate_run_parameters(params)
        self.source = checked.source
        self.families = checked.families
        # Claimed now, so a second run naming the same directory stops here, not after training.
        self.scores_claim = f"{current.flow_name}/{current.run_id}"
        if self.scores_dir:
            claim_scores_location(
                self.scores_dir,
                self.scores_claim,
                previous_owner=f"{current.flow_name}/{current.origin_run_id}",
            )
        print(
            f"families: {', '.join(self.families)}; {len(checked.cpu_candidates)} CPU and "
            f"{len(checked.gpu_candidates)} GPU candidates; at most "
            f"{self.limits.candidate_seconds} s per candidate"
        )
        self.next(self.get_dataset)

    @magicdir(dir="data")
    @step
    def get_dataset(self):
        """Normalise, sample and split the interactions with DuckDB (parquet into the magicdir)."""
        from data import prepare_dataset

        self.split = prepare_dataset(
            self.source,
            magicdir_path("data") / "split",
            row_sampling=self.row_sampling,
            seed=self.seed,
            training_end_date=self.training_end_date or None,
            validation_end_date=self.validation_end_date or None,
        )
        self.next(self.build_workflow)

    @magicdir(dir="all_data")
    @magicdir(dir="data")
    @step
    def build_workflow(self):
        """Fit the NVTabular workflow on train; encode ids; keep the id maps as artifacts.

        With --refit, also encode every window with id maps over all the data (the refit's
        input, in its own directory so the training branches do not carry it)."""
        from reclab.encoded import read_item_metadata
        from reclab.models.registry import reads_nvtabular_output
        from workflow_builder import build_all_data, build_workflow

        root = magicdir_path("data")
        with_features = reads_nvtabular_output(self.families)
        # Without a family that reads Merlin's tagged parquet, only the ids are encoded; later
        # steps read encoded/ and nvt/, so the canonical windows need not travel further.
        built = build_workflow(
            root / "split", root, with_features=with_features, keep_split_windows=self.refit
        )
        self.user_map, self.item_map = built.user_map, built.item_map
        self.user_features, self.item_features = built.user_features, built.item_features
        self.full_user_map = self.full_item_map = None
        if self.refit:
            full = build_all_data(
                root / "split",
                magicdir_path("all_data"),
                with_features=with_features,
                remove_split_windows=True,
            )
            self.full_user_map, self.full_item_map = full.user_map, full.item_map
        self.item_metadata = read_item_metadata(root / "split" / "items.parquet")
        self.next(self.plan_candidates)

    @step
    def plan_candidates(self):
        """Plan and check the candidates from the grid file (re-read by resume plan_candidates)."""
        from reclab.production import (
            checked_incumbent,
            find_incumbent,
            project_branch_tag,
            with_incumbent,
        )
        from reclab.training import plan_checked_candidates

        self.cpu_candidates, self.gpu_candidates = plan_checked_candidates(
            self.families,
            self.grid,
            self.grid_file or None,
            self.family_overrides,
            seed=self.seed,
        )
        # The production run's recipe competes on this run's split (not for --promotion never).
        self.incumbent = None
        if self.promotion != "never":
            found = find_incumbent(
                current.flow_name, project_branch_tag(), f"{current.flow_name}/{current.run_id}"
            )
            self.incumbent = checked_incumbent(found, seed=self.seed)
        self.cpu_candidates, self.gpu_candidates = with_incumbent(
            self.incumbent, self.cpu_candidates, self.gpu_candidates
        )
        # Metaflow refuses an empty foreach: a fan-out with no candidate runs one no-op branch.
        self.cpu_branches = self.cpu_candidates or [None]
        self.gpu_branches = self.gpu_candidates or [None]
        print(
            "candidates: "
            + ", ".join(c["candidate_id"] for c in self.cpu_candidates + self.gpu_candidates)
        )
        self.next(self.cpu_fanout, self.gpu_fanout)

    @step
    def cpu_fanout(self):
        """Fan out over the CPU candidates (family, hyper-parameters)."""
        self.next(self.train_cpu, foreach="cpu_branches")

    # A candidate that raises or runs past the limit is caught: @catch stores the exception in
    # self.failure and the branch goes on to collect_cpu, where it becomes a failed row.
    @catch(var="failure", print_exception=True)
    @timeout(seconds=limits.candidate_seconds)
    @magicdir(dir="data")
    @step
    def train_cpu(self):
        """Fit one CPU candidate on train; evaluate it on validation and test."""
        from reclab.training import train_branch

        train_branch(self, magicdir_path("data") / "encoded")
        self.next(self.collect_cpu)

    @magicdir(dir="data")
    @step
    def collect_cpu(self, inputs):
        """Gather the CPU candidates' results and failures (model payloads: each family's best)."""
        from reclab.training import collect_branches

        collect_branches(self, inputs)
        self.next(self.join)

    @step
    def gpu_fanout(self):
        """Fan out over the GPU candidates (deep families)."""
        self.next(self.train_gpu, foreach="gpu_branches")

    @catch(var="failure", print_exception=True)
    @timeout(seconds=limits.candidate_seconds)
    @gpu_on_batch(**compute)
    @resources(gpu=1, cpu=4, memory=14336)
    @magicdir(dir="data")
    @step
    def train_gpu(self):
        """Fit one GPU candidate on train; evaluate it on validation and test."""
        from reclab.training import train_branch

        train_branch(self, magicdir_path("data") / "encoded")
        self.next(self.collect_gpu)

    @magicdir(dir="data")
    @step
    def collect_gpu(self, inputs):
        """Gather the GPU candidates' results and failures (model payloads: each family's best)."""
        from reclab.training import collect_branches

        collect_branches(self, inputs)
        self.next(self.join)

    @card(type="blank", id="leaderboard")
    @magicdir(dir="data")
    @step
    def join(self, inputs):
        """Rank every candidate by the validation metric and version the best one."""
        from metaflow.cards import Markdown

        from reclab.production import decide_promotion, served_model_note
        from reclab.report import (
            leaderboard_components,
            leaderboard_text,
            run_report_components,
            sample_user_stories,
        )
        from reclab.training import summarise_run

        results = inputs.collect_cpu.results + inputs.collect_gpu.results
        failures = inputs.collect_cpu.failures + inputs.collect_gpu.failures
        self.merge_artifacts(inputs, exclude=["results", "failures"])
        summary = summarise_run(
            results,
            self.validation_metric,
            self.user_map,
            self.item_map,
            self.item_metadata,
            self.split,
            failures=failures,
            resume_hint=(
                f"`python {sys.argv[0]} resume plan_candidates --origin-run-id "
                f"{current.run_id}` re-plans them from the grid file and trains them, reusing "
                "the data steps"
            ),
        )
        self.leaderboard = summary.leaderboard
        self.best_model_name = summary.best_model_name
        self.best_params = summary.best_params
        # The refit step replaces best_model with the recipe fitted on all the data.
        self.evaluated_model = self.best_model = summary.best_model
        self.test_metrics = summary.test_metrics
        self.valid_metrics = summary.valid_metrics
        self.best_model_per_family = summary.best_model_per_family
        self.metric_curves = summary.metric_curves
        self.caveats = summary.caveats
        try:
            current.run.add_tag(f"best_model:{self.best_model_name}")
        except Exception as error:  # noqa: BLE001 - a missing tag must not lose the trained models
            logging.warning("could not tag the run with the best family: %s", error)
        stories = sample_user_stories(
            str(magicdir_path("data") / "encoded"), self.best_model, k=self.k, seed=self.seed
        )
        self.promotion_decision = decide_promotion(
            self.leaderboard, self.validation_metric, self.incumbent, self.promotion, self.refit
        ).as_dict()
        for component in (
            leaderboard_components(
                self.leaderboard, self.validation_metric, self.split, self.caveats
            )
            + [Markdown(served_model_note(self.refit, self.promotion_decision))]
            + run_report_components(
                self.leaderboard, self.metric_curves, self.validation_metric, self.k, stories
            )
        ):
            current.card["leaderboard"].append(component)
        print(leaderboard_text(self.leaderboard, self.validation_metric, self.caveats))
        print(f"promotion: {self.promotion_decision['reason']}")
        self.next(self.refit_winner)

    # The refit trains the winner's family, a deep one too: on AWS Batch it runs where the
    # GPU candidates do. A refit that fails leaves best_model the evaluated fit, and the run is
    # then not promoted (end says why).
    @catch(var="refit_failure", print_exception=True)
    @gpu_on_batch(**compute)
    @resources(gpu=1, cpu=4, memory=14336)
    @magicdir(dir="all_data")
    @step
    def refit_winner(self):
        """Fit the winner's recipe on all the run's data: the model that is served."""
        from reclab.production import refit_for_serving

        if self.refit:
            self.best_model = refit_for_serving(
                self.evaluated_model,
                magicdir_path("all_data"),
                self.full_user_map,
                self.full_item_map,
                seed=self.seed,
            )
        print(
            f"serving {self.best_model.family} fitted on {self.best_model.trained_on}: "
            f"{len(self.best_model.user_map)} users, {len(self.best_model.item_map)} items"
        )
        self.next(self.batch_score)

    @step
    def batch_score(self):
        """Pre-compute the winner's top-K for every known user (the serving cache)."""
        from reclab.batch_scoring import default_scores_location, publish_batch_scores

        # The run's datastore decides where the cache goes: beside its artifacts by default.
        location = self.scores_dir or default_scores_location(
            *task_datastore(), current.flow_name, current.run_id
        )
        written = publish_batch_scores(
            self.best_model,
            location,
            k=self.batch_k,
            claim=self.scores_claim if self.scores_dir else None,
        )
        self.batch_scores_location = location
        self.batch_scores_rows = written.rows
        print(f"batch scores: {written.rows} rows for {written.users} users at {location}")
        self.next(self.end)

    @step
    def end(self):
        """Report the winner; move the production tag here when the run is promoted."""
        from reclab.production import project_branch_tag, promote_run, without_refit

        if self.refit_failure is not None:
            self.promotion_decision = without_refit(self.promotion_decision, self.refit_failure)
        if self.promotion_decision["promote"]:
            promote_run(current.flow_name, current.run_id, project_branch_tag())
        print(
            ("PROMOTED: " if self.promotion_decision["promote"] else "not promoted: ")
            + self.promotion_decision["reason"]
        )
        print(
            f"best model: {self.best_model_name} {self.best_params}; "
            f"test {self.validation_metric} = {self.test_metrics[self.validation_metric]:.4f}"
        )
        for caveat in self.caveats:
            print(f"CAVEAT: {caveat}")


if __name__ == "__main__":
    # SIGINT / SIGTERM stop the run's tasks and leave no @magicdir folders behind.
    with stop_cleanly("TrainFlow"):
        TrainFlow()
