"""Score a sharded corpus with datatrove and keep the middle half by loss, on one machine, a Slurm cluster or Ray.

The reference models come from a corpus run (``datadiet score --objective causal-lm --output-dir RUN``); this script
only scores and filters, with any number of datatrove tasks (one per input file at most):

    python examples/corpus_pipeline.py --run RUN --data DATA_FOLDER --out OUT                       # local, 2 tasks
    python examples/corpus_pipeline.py --run RUN --data DATA_FOLDER --out OUT --executor slurm \\
        --tasks 64 --partition cpu --time 02:00:00
    python examples/corpus_pipeline.py --run RUN --data DATA_FOLDER --out OUT --executor ray --tasks 64

It writes ``OUT/shards`` (the scored documents, one parquet shard per task), ``OUT/scores`` (the shards merged into
one score dataset: ``datadiet_hub.load_scores(OUT/scores, "scores")``) and ``OUT/kept`` (the documents in the middle
half of the loss distribution). On a cluster every path must be on a shared filesystem; DATA_FOLDER holds parquet
files with a ``text`` column.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def executor(name: str, pipeline: list, args: argparse.Namespace, logs: Path, depends=None):
    """The datatrove executor asked for; the pipeline and the steps are the same on each."""
    if name == "local":
        from datatrove.executor import LocalPipelineExecutor

        return LocalPipelineExecutor(pipeline, tasks=args.tasks, logging_dir=str(logs), depends=depends)
    if name == "slurm":
        from datatrove.executor import SlurmPipelineExecutor

        return SlurmPipelineExecutor(
            pipeline,
            tasks=args.tasks,
            time=args.time,
            partition=args.partition,
            cpus_per_task=1,
            mem_per_cpu_gb=4,
            job_name=logs.name,
            logging_dir=str(logs),
            depends=depends,
        )
    from datatrove.executor import RayPipelineExecutor

    return RayPipelineExecutor(
        pipeline, tasks=args.tasks, cpus_per_task=1, mem_per_cpu_gb=4, logging_dir=str(logs), depends=depends
    )


def main() -> None:
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter

    from datadiet_hub.scoring.datatrove_steps import KeepByScores, ScoreDocuments, merge_score_shards

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="the corpus run's --output-dir (its reference models)")
    parser.add_argument("--data", required=True, help="folder of parquet files with a 'text' column")
    parser.add_argument("--out", required=True)
    parser.add_argument("--executor", choices=("local", "slurm", "ray"), default="local")
    parser.add_argument("--tasks", type=int, default=2)
    parser.add_argument("--partition", default="cpu", help="slurm partition")
    parser.add_argument("--time", default="02:00:00", help="slurm time limit per task")
    args = parser.parse_args()
    out = Path(args.out)

    score = executor(
        args.executor,
        [ParquetReader(args.data), ScoreDocuments(args.run), ParquetWriter(str(out / "shards"))],
        args,
        out / "logs-score",
    )
    score.run()  # on slurm this submits the array job and returns; run the merge once it is done
    if args.executor == "slurm":
        print(f"submitted; when the jobs finish: merge_score_shards({str(out / 'shards')!r}, ...) then filter")
        return
    scores = merge_score_shards(out / "shards", out / "scores", run_dir=args.run, config="scores")
    keep = KeepByScores(str(scores), config="scores", column="loss", fraction=0.5, strategy="middle")
    executor(
        args.executor, [ParquetReader(args.data), keep, ParquetWriter(str(out / "kept"))], args, out / "logs-keep"
    ).run()
    print(f"scores in {scores}; kept documents in {out / 'kept'}")


if __name__ == "__main__":
    main()
