"""SelectionRunner's contract: answer at the deadline, keep what missed it until asked for, never
compute a task twice while it runs, keep delivered outcomes only briefly, retry failures afresh.

The predictor here is a counting stand-in (the runner only calls `predict_task`); the real pipeline
is covered through HTTP in tests/integration/."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from gemini_ls.labelconfig import parse_label_config
from gemini_ls.metrics import Metrics
from gemini_ls.predict import TaskOutcome
from gemini_ls.selectionrunner import SelectionRunner
from gemini_ls.settings import Settings

SPEC = parse_label_config('<View><Image name="image" value="$image"/>'
                          '<RectangleLabels name="r" toName="image"><Label value="A"/></RectangleLabels></View>')


class CountingPredictor:
    def __init__(self, seconds: dict[int, float], fail: set[int] = frozenset()):
        self.seconds = seconds
        self.fail = set(fail)
        self.calls: list[int] = []
        self.lock = threading.Lock()

    def predict_task(self, task, spec, plans, fetch, *, deadline, uses_by_ref=None):
        with self.lock:
            self.calls.append(task["id"])
        time.sleep(self.seconds.get(task["id"], 0.0))
        if task["id"] in self.fail:
            return TaskOutcome(task["id"], "failed", error="boom", reason="internal")
        return TaskOutcome(task["id"], "ok", result=({"id": f"r{task['id']}"},), score=0.9)


def _tasks(*ids):
    return [{"id": i, "data": {"image": f"http://x/{i}.png"}} for i in ids]


def _runner(predictor, **kw):
    settings = Settings.from_env({"GEMINI_CONCURRENCY": "4", "PREDICT_TIMEOUT": "30"})
    return SelectionRunner(predictor, settings, Metrics(), **kw)


def _run(runner, tasks, seconds):
    return runner.run(tasks, SPEC, "v1", lambda ref, tid: b"", deadline=time.monotonic() + seconds)


def test_late_tasks_are_answered_without_result_and_served_later_without_recomputing():
    predictor = CountingPredictor({1: 0.0, 2: 0.6})
    runner = _runner(predictor)
    first = _run(runner, _tasks(1, 2), 0.3)
    assert [o.status for o in first] == ["ok", "late"]
    assert "result" not in first[1].to_response("v1") and "result" in first[0].to_response("v1")
    time.sleep(0.5)
    second = _run(runner, _tasks(2), 5)
    assert second[0].status == "ok" and predictor.calls.count(2) == 1
    runner.shutdown()


def test_a_task_still_running_is_joined_not_started_again():
    predictor = CountingPredictor({7: 0.5})
    runner = _runner(predictor)
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: _run(runner, _tasks(7), 5), range(3)))
    assert all(r[0].status == "ok" for r in results)
    assert predictor.calls == [7]
    runner.shutdown()


def test_delivered_outcomes_are_kept_briefly_late_ones_until_asked_for():
    predictor = CountingPredictor({1: 0.0, 2: 0.4})
    runner = _runner(predictor, delivered_seconds=0.2, keep_seconds=30)
    _run(runner, _tasks(1, 2), 0.2)  # 1 delivered, 2 late
    time.sleep(0.5)  # 2 finished meanwhile; 1's short keep has run out
    _run(runner, _tasks(1, 2), 5)
    assert predictor.calls.count(1) == 2  # delivered long ago: computed again
    assert predictor.calls.count(2) == 1  # late: served from memory
    runner.shutdown()


def test_failures_are_not_kept():
    predictor = CountingPredictor({}, fail={3})
    runner = _runner(predictor)
    assert _run(runner, _tasks(3), 5)[0].status == "failed"
    assert _run(runner, _tasks(3), 5)[0].status == "failed"
    assert predictor.calls == [3, 3]
    runner.shutdown()


def test_memory_is_bounded():
    predictor = CountingPredictor({})
    runner = _runner(predictor, keep_max=5)
    _run(runner, _tasks(*range(20)), 5)
    time.sleep(0.1)
    assert len(runner._done) <= 5
    runner.shutdown()


def test_cancel_unstarted_takes_tasks_not_started_off_the_pool():
    # 4 threads, 8 tasks of 0.5 s: at 0.2 s four run, four wait; those four are handed back
    predictor = CountingPredictor({i: 0.5 for i in range(1, 9)})
    runner = _runner(predictor)
    handed: list = []
    out = runner.run(_tasks(*range(1, 9)), SPEC, "v1", lambda ref, tid: b"", deadline=time.monotonic() + 0.2,
                     on_late=handed.append, cancel_unstarted=True)
    assert [o.reason for o in out] == ["late"] * 4 + ["unstarted"] * 4
    time.sleep(0.8)
    assert sorted(predictor.calls) == [1, 2, 3, 4]  # the unstarted ones never ran
    assert sorted(o.task_id for o in handed) == [1, 2, 3, 4]  # the running ones still reach on_late
    again = _run(runner, _tasks(5), 5)  # nothing of the cancelled task is left in the runner
    assert again[0].status == "ok" and predictor.calls.count(5) == 1
    runner.shutdown()
