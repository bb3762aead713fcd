"""Problems are split into chunks of about equal size within the memory budget."""
from cortexbench.plugins.benchmarks.things_oddoneout.fitting import SolverSettings, chunks


def _sizes(parts: list[slice]) -> list[int]:
    return [s.stop - s.start for s in parts]


def test_chunks_are_balanced_within_the_budget():
    settings = SolverSettings(memory_gb=1.0)
    per_problem = 2 ** 30 / 8                                       # 7 fit in the budget (7/8 of it)
    assert _sizes(chunks(10, per_problem, settings)) == [5, 5]     # not 7 + 3: no short chunk with its own tail
    assert _sizes(chunks(7, per_problem, settings)) == [7]
    assert _sizes(chunks(15, per_problem, settings)) == [5, 5, 5]
    assert _sizes(chunks(0, per_problem, settings)) == []


def test_chunks_respect_max_batch():
    parts = chunks(10, 1.0, SolverSettings(max_batch=4))
    assert _sizes(parts) == [3, 4, 3]
    assert parts[0].start == 0 and parts[-1].stop == 10 and all(a.stop == b.start for a, b in zip(parts, parts[1:]))
