"""Downstream evaluation of trained checkpoints: multiple choice, pass@k, few-shot; results into run dirs.

    results = evaluation.evaluate_run(run_dir, ["line_end", "close_brackets"], evaluation.Options(shots=0))
    results, errors, waiting = evaluation.evaluate_study(root, study, ["hellaswag"], evaluation.Options())

Each (run, task, step) becomes one metric record with split "downstream" and names "<task>/<metric>":
acc, acc_norm_token, acc_norm_byte, acc_stderr, bpb, chance and examples for multiple choice;
pass@k and examples for generative tasks. `mixlaws collect` ingests them; a done marker under
<run_dir>/downstream/ makes evaluating the same (task, step) again a no-op.

Modules: `tasks` (examples, few-shot, JSONL and TFDS sources), `embedded` (the default tasks from the
local corpus), `scores` (metrics), `engine` (checkpoint restore, batched scoring and sampling),
`runner` (runs, studies, markers and records).
"""

from mixlaws.evaluation.runner import Options, Result, evaluate_run, evaluate_study, task_names

__all__ = ["Options", "Result", "evaluate_run", "evaluate_study", "task_names"]
