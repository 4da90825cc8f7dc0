"""The page's pure parts: a running task's progress row."""

from daemon.web.page import running_table


def test_a_running_task_shows_the_time_used_of_its_limit_and_its_cpu() -> None:
    html = running_table([{"job": "ab" * 32, "task": 4, "replica": 1, "started": 1.7e9,
                           "elapsed_s": 12.4, "allowance_s": 40.0, "used_of_allowance": 0.31,
                           "cpu_s": 6.04}])
    assert 'data-test="running-task"' in html
    assert f"<td>{'ab' * 6}/4.1</td>" in html
    assert '<progress max="1" value="0.310"></progress> 12 of 40 s' in html
    assert "<td>6.0</td>" in html


def test_no_running_task_says_so() -> None:
    assert "no task running now" in running_table([])
